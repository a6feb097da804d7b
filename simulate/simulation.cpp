#include "simulate/simulation.h"

#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "util/atomic_file.h"
#include "util/read_file.h"

namespace agora {
namespace {

using Json = nlohmann::ordered_json;

GeneratorCounters Totals(const SimulationContext& context) {
  GeneratorCounters total = context.policy->counters();
  if (context.judge != context.policy) {
    const GeneratorCounters judge = context.judge->counters();
    total.requests += judge.requests;
    total.prompt_tokens += judge.prompt_tokens;
    total.cached_prompt_tokens += judge.cached_prompt_tokens;
    total.generated_tokens += judge.generated_tokens;
    total.truncated_prompts += judge.truncated_prompts;
  }
  return total;
}

}  // namespace

TextRequest SimulationRequest(const SimulationContext& context, std::string key, std::string prompt,
                              double temperature, std::vector<std::string> stop_strings) {
  TextRequest r;
  r.seed = StableSeed(context.seed, key);
  r.key = std::move(key);
  r.prompt = std::move(prompt);
  r.max_new_tokens = context.recipe.max_new_tokens;
  r.temperature = temperature;
  r.top_p = context.recipe.top_p;
  r.stop_strings = std::move(stop_strings);
  return r;
}

absl::StatusOr<std::vector<std::string>> ReadQuestions(const std::filesystem::path& path, int64_t max_questions) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  const bool jsonl = path.extension() == ".jsonl";
  std::vector<std::string> questions;
  int64_t line_number = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++line_number;
    if (max_questions > 0 && static_cast<int64_t>(questions.size()) >= max_questions) break;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    if (!jsonl) {
      questions.emplace_back(absl::StripAsciiWhitespace(line));
      continue;
    }
    const Json record = Json::parse(line.begin(), line.end(), nullptr, false);
    const std::string where = absl::StrCat(path.string(), ":", line_number);
    if (record.is_discarded() || !record.is_object()) return absl::InvalidArgumentError(where + ": not a JSON object");
    bool found = false;
    for (const char* field : {"question", "prompt", "instruction"}) {
      if (!record.contains(field)) continue;
      if (!record[field].is_string() || record[field].get<std::string>().empty())
        return absl::InvalidArgumentError(absl::StrCat(where, ": \"", field, "\" must be a non-empty string"));
      questions.push_back(record[field].get<std::string>());
      found = true;
      break;
    }
    if (!found) return absl::InvalidArgumentError(where + ": expected a \"question\", \"prompt\" or \"instruction\"");
  }
  if (questions.empty()) return absl::InvalidArgumentError(absl::StrCat(path.string(), ": no questions"));
  return questions;
}

absl::StatusOr<PromptTemplate> LoadPrompt(const SimulationContext& context, const std::string& file,
                                          const std::vector<std::string>& slots) {
  return PromptTemplate::Load(context.prompts / file, slots);
}

absl::StatusOr<std::vector<std::string>> ReadLines(const std::filesystem::path& path, const std::string& key) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(key, " is required: a file, one entry a line"));
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return absl::Status(text.status().code(), absl::StrCat(key, ": ", text.status().message()));
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(*text, '\n'))
    if (!absl::StripAsciiWhitespace(line).empty()) lines.emplace_back(absl::StripAsciiWhitespace(line));
  if (lines.empty()) return absl::InvalidArgumentError(absl::StrCat(key, ": ", path.string(), " has no lines"));
  return lines;
}

SimulationProgress::SimulationProgress(const SimulationContext& context, int64_t total_questions)
    : context_(context), total_(total_questions) {}

void SimulationProgress::Update(int64_t questions_done, bool computed) {
  if (computed) this_run_ += questions_done - done_;
  done_ = questions_done;
  const Json s = Summary();
  const std::string line = absl::StrFormat(
      "simulate %s: questions %d/%d  %.2f q/s  %.0f tok/s  cache %.0f%%",
      SimulationMethodName(context_.recipe.method), done_, total_, s["questions_per_s"].get<double>(),
      s["tokens_per_s"].get<double>(), 100 * s["prefix_cache_hit_rate"].get<double>());
  std::fprintf(stderr, context_.terminal ? "\r%s" : "%s\n", line.c_str());
  if (context_.terminal && done_ == total_) std::fprintf(stderr, "\n");
}

Json SimulationProgress::Summary() const {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const GeneratorCounters c = Totals(context_);
  const int64_t this_run = this_run_;
  return Json{{"questions", total_},
              {"questions_this_run", this_run},
              {"seconds_this_run", seconds},
              {"questions_per_s", seconds > 0 ? this_run / seconds : 0.0},
              {"tokens_per_s", seconds > 0 ? (c.prompt_tokens - c.cached_prompt_tokens + c.generated_tokens) / seconds
                                           : 0.0},
              {"generated_tokens_per_s", seconds > 0 ? c.generated_tokens / seconds : 0.0},
              {"requests", c.requests},
              {"prompt_tokens", c.prompt_tokens},
              {"cached_prompt_tokens", c.cached_prompt_tokens},
              {"generated_tokens", c.generated_tokens},
              {"truncated_prompts", c.truncated_prompts},
              {"prefix_cache_hit_rate",
               c.prompt_tokens ? static_cast<double>(c.cached_prompt_tokens) / c.prompt_tokens : 0.0}};
}

absl::StatusOr<SimulationOutput> RunSimulation(const SimulationContext& context) {
  std::error_code error;
  std::filesystem::create_directories(context.out, error);
  if (error) return absl::InternalError(absl::StrCat(context.out.string(), ": ", error.message()));
  absl::StatusOr<SimulationOutput> output;
  switch (context.recipe.method) {
    case SimulationMethod::kSandbox: output = SimulateSandbox(context); break;
    case SimulationMethod::kMatrix: output = SimulateMatrix(context); break;
    case SimulationMethod::kSelfAlign: output = SimulateSelfAlign(context); break;
  }
  if (!output.ok()) return output.status();
  const Json summary = {{"method", SimulationMethodName(context.recipe.method)},
                        {"train_file", output->train_file.filename().string()},
                        {"format", RecordFormatName(output->format)},
                        {"counts", output->counts},
                        {"throughput", output->throughput}};
  if (absl::Status s = WriteStringAtomically(context.out / "summary.json", summary.dump(2) + "\n"); !s.ok()) return s;
  // What was made, dropped and filtered, for the log (summary.json holds the same).
  std::string counts;
  for (const auto& [what, n] : output->counts) absl::StrAppend(&counts, counts.empty() ? "" : ", ", what, " ", n);
  std::fprintf(stderr, "simulate %s: %s\n", SimulationMethodName(context.recipe.method).c_str(), counts.c_str());
  return output;
}

}  // namespace agora
