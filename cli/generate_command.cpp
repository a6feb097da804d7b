// agora generate: load an HF model folder and answer prompts through the generation engine: --prompt /
// --prompt_file print each continuation; --requests in.jsonl --out out.jsonl answers a request file
// (cli/generation_requests.h), appending results as they finish and resuming where a stopped run left off.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "cli/generation_requests.h"
#include "cli/model_setup.h"
#include "data/chat_template.h"
#include "models/generation_engine.h"
#include "util/record_journal.h"

ABSL_DECLARE_FLAG(std::string, out);  // cli/export_command.cpp
ABSL_FLAG(std::string, prompt, "", "prompt text");
ABSL_FLAG(std::string, prompt_file, "", "file with one prompt per line, answered together");
ABSL_FLAG(std::string, requests, "",
          "JSONL request file: {\"id\", \"prompt\" | \"messages\", sampling fields}; results go to --out");
ABSL_FLAG(std::string, on_bad_line, "error", "generate --requests: error (stop at a bad request line) or skip");
ABSL_FLAG(int64_t, max_new_tokens, 64, "tokens to generate per prompt at most");
ABSL_FLAG(double, temperature, 0.0, "sampling temperature; 0 decodes greedily");
ABSL_FLAG(int64_t, top_k, 0, "sample among the k most likely tokens (0: all)");
ABSL_FLAG(double, top_p, 1.0, "sample among the most likely tokens holding this much probability");
ABSL_FLAG(uint64_t, seed, 0, "generate: the sampler's seed; data sandbox-to-groups: the seed of the entries kept");

namespace agora::cli {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "agora generate: %s\n", std::string(status.message()).c_str());
  return 1;
}

absl::StatusOr<std::vector<std::string>> ReadPrompts() {
  std::vector<std::string> prompts;
  if (!absl::GetFlag(FLAGS_prompt).empty()) prompts.push_back(absl::GetFlag(FLAGS_prompt));
  if (const std::string file = absl::GetFlag(FLAGS_prompt_file); !file.empty()) {
    std::ifstream in(file);
    if (!in) return absl::NotFoundError(absl::StrCat("--prompt_file ", file, ": cannot open"));
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) prompts.push_back(line);
  }
  if (prompts.empty()) return absl::InvalidArgumentError("give --prompt TEXT or --prompt_file FILE");
  return prompts;
}

SamplingOptions DefaultSampling(const Setup& setup) {
  SamplingOptions s;
  s.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  s.temperature = absl::GetFlag(FLAGS_temperature);
  s.top_k = absl::GetFlag(FLAGS_top_k);
  s.top_p = absl::GetFlag(FLAGS_top_p);
  s.seed = absl::GetFlag(FLAGS_seed);
  s.stop_ids = setup.stop_ids;
  return s;
}

// --prompt / --prompt_file: every prompt through one engine run, printed in order with its prompt.
int AnswerPrompts(Setup& setup) {
  absl::StatusOr<std::vector<std::string>> prompts = ReadPrompts();
  if (!prompts.ok()) return Fail(prompts.status());
  GenerationEngine engine(setup.model, MakeEngineOptions(setup));
  std::vector<std::vector<int64_t>> prompt_ids, outputs(prompts->size());
  for (size_t i = 0; i < prompts->size(); ++i) {
    absl::StatusOr<std::vector<int64_t>> ids = PromptIds(setup, (*prompts)[i], std::nullopt);
    if (!ids.ok()) return Fail(ids.status());
    prompt_ids.push_back(*ids);
    SamplingOptions sampling = DefaultSampling(setup);
    sampling.seed += i;  // each prompt its own draws
    if (absl::Status s = engine.Submit({std::to_string(i), *ids, sampling}); !s.ok()) return Fail(s);
  }
  engine.Run([&outputs](GenerationResult r) { outputs[std::stoul(r.id)] = std::move(r.tokens); });
  for (size_t i = 0; i < outputs.size(); ++i) {
    // Decode prompt and continuation together: sentencepiece drops the leading space of the first piece only.
    std::vector<int32_t> ids(prompt_ids[i].begin(), prompt_ids[i].end());
    ids.insert(ids.end(), outputs[i].begin(), outputs[i].end());
    std::printf("%s\n", setup.tokenizer->Decode(ids).c_str());
  }
  return 0;
}

// Requests done, rates and the prefix cache's share of prompt tokens: on one rewritten line on a terminal, a line
// every ten seconds otherwise, and once at the end.
class Progress {
 public:
  explicit Progress(int64_t total) : total_(total), terminal_(isatty(STDERR_FILENO) == 1) {}
  void Update(const EngineStats& stats, int64_t done, bool last) {
    const double elapsed = Seconds(start_);
    if (!last && Seconds(printed_) < (terminal_ ? 0.5 : 10.0)) return;
    printed_ = Clock::now();
    const double hit = stats.prompt_tokens > 0 ? 100.0 * stats.cached_prompt_tokens / stats.prompt_tokens : 0.0;
    std::fprintf(stderr, "%s%d/%d requests in %.2f s, %.2f requests/s, %.1f generated tokens/s, prefix cache %.0f%% "
                 "of prompt tokens%s", terminal_ ? "\r" : "", static_cast<int>(done), static_cast<int>(total_),
                 elapsed, done / std::max(elapsed, 1e-9), stats.generated_tokens / std::max(elapsed, 1e-9), hit,
                 terminal_ && !last ? "" : "\n");
  }

 private:
  using Clock = std::chrono::steady_clock;
  static double Seconds(Clock::time_point since) {
    return std::chrono::duration<double>(Clock::now() - since).count();
  }
  int64_t total_;
  bool terminal_;
  Clock::time_point start_ = Clock::now(), printed_ = Clock::now();
};

// --requests FILE --out FILE.
// A line of the results file, a RecordJournal (util/record_journal.h) keyed by "id": a rerun skips the ids it
// holds and cuts a torn last line.
nlohmann::ordered_json ResultLine(const GenerationResult& result) {
  return {{"id", result.id}, {"text", result.text}, {"tokens", result.tokens}, {"finish_reason", result.finish_reason}};
}

int AnswerRequests(Setup& setup) {
  const std::string out_path = absl::GetFlag(FLAGS_out);
  if (out_path.empty()) return Fail(absl::InvalidArgumentError("--requests needs --out RESULTS.jsonl"));
  const std::string policy = absl::GetFlag(FLAGS_on_bad_line);
  if (policy != "error" && policy != "skip")
    return Fail(absl::InvalidArgumentError(absl::StrCat("--on_bad_line: expected error or skip, got '", policy, "'")));
  int64_t skipped = 0;
  const std::string requests_path = absl::GetFlag(FLAGS_requests);
  absl::StatusOr<std::vector<RequestLine>> lines =
      ReadRequestLines(requests_path, DefaultSampling(setup), policy == "skip", &skipped);
  if (!lines.ok()) return Fail(lines.status());
  absl::StatusOr<RecordJournal> results = RecordJournal::Open(out_path, "id");
  if (!results.ok()) return Fail(results.status());
  GenerationEngine engine(setup.model, MakeEngineOptions(setup));
  int64_t queued = 0;
  for (const RequestLine& line : *lines) {
    if (results->Has(line.id)) continue;
    const std::string where = absl::StrCat(requests_path, ":", line.line, ": ");
    absl::StatusOr<std::vector<int64_t>> ids =
        line.prompt_ids ? *line.prompt_ids : PromptIds(setup, line.prompt, line.messages);
    if (!ids.ok()) return Fail(absl::InvalidArgumentError(absl::StrCat(where, ids.status().message())));
    SamplingOptions sampling = line.sampling;
    for (const std::string& choice : line.choices)
      sampling.choices.push_back(Widen(setup.tokenizer->Encode(choice, {.add_bos = false})));
    if (absl::Status s = engine.Submit({line.id, *ids, sampling, line.use_adapter}); !s.ok())
      return Fail(absl::InvalidArgumentError(absl::StrCat(where, s.message())));
    ++queued;
  }
  const int64_t already = static_cast<int64_t>(lines->size()) - queued;
  std::fprintf(stderr, "%d requests in %s (%d bad lines skipped), %d already in %s, %d to answer\n",
               static_cast<int>(lines->size()), requests_path.c_str(), static_cast<int>(skipped),
               static_cast<int>(already), out_path.c_str(), static_cast<int>(queued));
  Progress progress(queued);
  int64_t done = 0;
  absl::Status write = absl::OkStatus();
  engine.Run([&](GenerationResult r) {
    if (write.ok()) write = results->Append(ResultLine(r));
    progress.Update(engine.stats(), ++done, false);
  });
  progress.Update(engine.stats(), done, true);
  return write.ok() ? 0 : Fail(write);
}

}  // namespace

int RunGenerate(const std::vector<char*>& positional_args) {
  if (positional_args.size() > 1)
    return Fail(absl::InvalidArgumentError(absl::StrCat("unexpected argument '", positional_args[1], "'")));
  absl::StatusOr<Setup> setup = Load();
  if (!setup.ok()) return Fail(setup.status());
  return absl::GetFlag(FLAGS_requests).empty() ? AnswerPrompts(*setup) : AnswerRequests(*setup);
}

}  // namespace agora::cli
