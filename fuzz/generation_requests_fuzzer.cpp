// A request file of `agora generate --requests` (one JSON object a line; cut lines, bad UTF-8, huge numbers), read
// under either bad-line policy (the first byte picks). Every accepted request has a unique id, exactly one prompt
// form, sampling options in range and at most 10000 choices.
#include <set>

#include "cli/generation_requests.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool skip_bad_lines = data[0] & 1;
  const auto path = agora::fuzz::WriteScratchFile(agora::fuzz::AsText(data + 1, size - 1), ".jsonl");
  int64_t skipped = 0;
  absl::StatusOr<std::vector<agora::cli::RequestLine>> lines =
      agora::cli::ReadRequestLines(path, agora::SamplingOptions{}, skip_bad_lines, &skipped);
  if (!lines.ok()) return 0;
  std::set<std::string> ids;
  for (const agora::cli::RequestLine& r : *lines) {
    AGORA_FUZZ_CHECK(!r.id.empty() && ids.insert(r.id).second);
    AGORA_FUZZ_CHECK(r.prompt.has_value() + r.messages.has_value() + r.prompt_ids.has_value() == 1);
    const agora::SamplingOptions& s = r.sampling;
    AGORA_FUZZ_CHECK(s.temperature >= 0 && s.top_p > 0 && s.top_p <= 1 && s.min_p >= 0 && s.min_p <= 1 &&
                     s.repetition_penalty > 0 && s.top_k >= 0 && s.no_repeat_ngram_size >= 0);
    AGORA_FUZZ_CHECK(r.choices.size() <= 10000);
  }
  return 0;
}
