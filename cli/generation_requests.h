// `agora generate --requests in.jsonl` (and `agora eval --generate`): the request file. A request line is
// {"id", "prompt" | "messages" | "prompt_ids", ...sampling fields}. Torch-free, so the fuzz build fuzzes it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/record_formats.h"
#include "models/sampling_options.h"

namespace agora::cli {

// One request as the file gives it, before tokenisation.
struct RequestLine {
  int64_t line = 0;  // 1-based, for messages
  std::string id;
  std::optional<std::string> prompt;         // plain text
  std::optional<Conversation> messages;      // rendered with the chat template
  std::optional<std::vector<int64_t>> prompt_ids;  // already tokenised, used as given
  SamplingOptions sampling;                  // the file's fields over the command line's defaults
  std::vector<std::string> choices;          // "choices": [...] or "integer_range": [lo, hi]
  bool use_adapter = true;                   // "adapter": false answers with the base model (--adapter given)
};

// Fields: id (string or integer, required, unique), one of prompt (string), messages ([{role, content}]) and
// prompt_ids (token ids, BOS included if wanted), and optional max_new_tokens, temperature, top_k, top_p, min_p,
// repetition_penalty, no_repeat_ngram_size, seed, stop (a string or a list), logit_bias ({"token id": bias}),
// adapter (false: answered by the base model when --adapter is given), choices (a list of strings) and
// integer_range ([lo, hi], at most 10000 values). Integers must be JSON integers (1.5 or 1e300 is refused, not
// cast). An unknown field, a wrong type or a repeated id is an error naming the file and line; with skip_bad_lines
// such lines are left out and counted in *skipped instead.
absl::StatusOr<std::vector<RequestLine>> ReadRequestLines(const std::filesystem::path& path,
                                                          const SamplingOptions& defaults, bool skip_bad_lines,
                                                          int64_t* skipped);

}  // namespace agora::cli
