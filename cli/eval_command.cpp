// agora eval --model M [--adapter A] --task FILE[,FILE...] [--out results.json] [--details details.jsonl]
//            [--generate prompts.jsonl --generate_out PREFIX]
// Multiple-choice tasks scored by the log-likelihood of each answer after its prompt (data/eval_tasks.h), through
// the engine's prefix cache so a question's prompt is computed once for all its answers; and, with --generate and
// an adapter, the base and the tuned model's answers to the same prompts side by side.
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "cli/generation_requests.h"
#include "cli/model_setup.h"
#include "models/eval_scoring.h"
#include "models/lora.h"
#include "util/atomic_file.h"

ABSL_DECLARE_FLAG(std::string, model);           // cli/model_setup.cpp
ABSL_DECLARE_FLAG(std::string, adapter);         // cli/model_setup.cpp
ABSL_DECLARE_FLAG(std::string, out);             // cli/export_command.cpp
ABSL_DECLARE_FLAG(int64_t, max_new_tokens);      // cli/generate_command.cpp
ABSL_FLAG(std::string, task, "", "eval: task files, comma-separated (TruthfulQA mc_task.json, BIG-bench task.json, "
                                 "or JSONL {question, choices, answer})");
ABSL_FLAG(std::string, details, "", "eval: per-answer token ids and log-likelihoods, as JSONL");
ABSL_FLAG(std::string, generate, "", "eval: prompts (request JSONL, as generate --requests) answered by the base "
                                     "and the tuned model (needs --adapter)");
ABSL_FLAG(std::string, generate_out, "", "eval --generate: PREFIX for PREFIX.jsonl and PREFIX.md");
ABSL_FLAG(std::string, commit, "", "eval: the commit recorded in the results JSON");

namespace agora::cli {
namespace {

using Json = nlohmann::ordered_json;

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "agora eval: %s\n", std::string(status.message()).c_str());
  return 1;
}

// --generate: every prompt answered with the adapters on (tuned) and off (base).
absl::Status GenerateSideBySide(Setup& setup) {
  const std::string prefix = absl::GetFlag(FLAGS_generate_out);
  if (!setup.has_adapter) return absl::InvalidArgumentError("--generate compares base and tuned: give --adapter");
  if (prefix.empty()) return absl::InvalidArgumentError("--generate needs --generate_out PREFIX");
  SamplingOptions defaults;
  defaults.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  defaults.stop_ids = setup.stop_ids;
  int64_t skipped = 0;
  absl::StatusOr<std::vector<RequestLine>> lines = ReadRequestLines(absl::GetFlag(FLAGS_generate), defaults, false,
                                                                    &skipped);
  if (!lines.ok()) return lines.status();
  std::map<std::string, std::string> answers[2];  // 0: base, 1: tuned
  for (int tuned : {1, 0}) {
    std::optional<LoraAdaptersDisabled> base;
    if (!tuned) base.emplace(setup.model);
    GenerationEngine engine(setup.model, MakeEngineOptions(setup));
    for (const RequestLine& line : *lines) {
      absl::StatusOr<std::vector<int64_t>> ids =
          line.prompt_ids ? *line.prompt_ids : PromptIds(setup, line.prompt, line.messages);
      if (!ids.ok()) return ids.status();
      if (absl::Status s = engine.Submit({line.id, *ids, line.sampling}); !s.ok()) return s;
    }
    engine.Run([&](GenerationResult r) { answers[tuned][r.id] = r.text; });
  }
  std::string jsonl, markdown = "| id | prompt | base | tuned |\n|---|---|---|---|\n";
  auto cell = [](const std::string& s) { return absl::StrReplaceAll(s, {{"|", "\\|"}, {"\n", "<br>"}}); };
  for (const RequestLine& line : *lines) {
    const std::string prompt = line.prompt ? *line.prompt : line.messages ? line.messages->messages.back().content : "";
    jsonl += Json{{"id", line.id}, {"prompt", prompt}, {"base", answers[0][line.id]}, {"tuned", answers[1][line.id]}}
                 .dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
    markdown += absl::StrCat("| ", cell(line.id), " | ", cell(prompt), " | ", cell(answers[0][line.id]), " | ",
                             cell(answers[1][line.id]), " |\n");
  }
  if (absl::Status s = WriteStringAtomically(prefix + ".jsonl", jsonl); !s.ok()) return s;
  if (absl::Status s = WriteStringAtomically(prefix + ".md", markdown); !s.ok()) return s;
  std::printf("%d prompts answered by base and tuned: %s.jsonl, %s.md\n", static_cast<int>(lines->size()),
              prefix.c_str(), prefix.c_str());
  return absl::OkStatus();
}

}  // namespace

int RunEval(const std::vector<char*>& positional_args) {
  if (positional_args.size() > 1)
    return Fail(absl::InvalidArgumentError(absl::StrCat("unexpected argument '", positional_args[1], "'")));
  const std::string tasks = absl::GetFlag(FLAGS_task);
  if (tasks.empty() && absl::GetFlag(FLAGS_generate).empty())
    return Fail(absl::InvalidArgumentError("give --task FILE[,FILE...] and/or --generate PROMPTS.jsonl"));
  absl::StatusOr<Setup> setup = Load();
  if (!setup.ok()) return Fail(setup.status());
  std::optional<std::ofstream> details;
  if (const std::string path = absl::GetFlag(FLAGS_details); !path.empty()) details.emplace(path);

  std::vector<TaskResult> results;
  GenerationEngine engine(setup->model, MakeEngineOptions(*setup));
  for (absl::string_view file : absl::StrSplit(tasks, ',', absl::SkipEmpty())) {
    absl::StatusOr<TaskResult> r = ScoreTaskFile(engine, *setup, std::string(file), details ? &*details : nullptr);
    if (!r.ok()) return Fail(r.status());
    results.push_back(*std::move(r));
  }
  if (!results.empty()) {
    std::printf("%-28s %-14s %6s %8s %9s %8s\n", "task", "format", "n", "acc", "acc_norm", "mc2");
    Json record = {{"model", absl::GetFlag(FLAGS_model)}, {"adapter", absl::GetFlag(FLAGS_adapter)},
                   {"commit", absl::GetFlag(FLAGS_commit)}, {"tasks", Json::array()}};
    for (const TaskResult& r : results) {
      std::printf("%-28s %-14s %6d %8.4f %9.4f %8.4f\n", r.task.name.c_str(), r.task.format.c_str(),
                  static_cast<int>(r.task.items.size()), r.acc, r.acc_norm, r.mc2);
      record["tasks"].push_back({{"task", r.task.name}, {"file", r.file}, {"format", r.task.format},
                                 {"n", r.task.items.size()},
                                 {"metrics", {{"acc", r.acc}, {"acc_norm", r.acc_norm}, {"mc2", r.mc2}}}});
    }
    const EngineStats& stats = engine.stats();
    std::printf("prefix cache: %.0f%% of %d prompt tokens restored instead of computed\n",
                stats.prompt_tokens ? 100.0 * stats.cached_prompt_tokens / stats.prompt_tokens : 0.0,
                static_cast<int>(stats.prompt_tokens));
    if (const std::string out = absl::GetFlag(FLAGS_out); !out.empty()) {
      if (absl::Status s = WriteStringAtomically(out, record.dump(2) + "\n"); !s.ok()) return Fail(s);
    }
  }
  if (!absl::GetFlag(FLAGS_generate).empty()) {
    if (absl::Status s = GenerateSideBySide(*setup); !s.ok()) return Fail(s);
  }
  return 0;
}

}  // namespace agora::cli
