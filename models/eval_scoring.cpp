#include "models/eval_scoring.h"

#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace agora {
namespace {

using Json = nlohmann::ordered_json;

// The summed log-likelihood of each choice, tokenised as lm-evaluation-harness does: the continuation is what
// encoding prompt + choice adds after the prompt's own encoding.
absl::StatusOr<std::vector<double>> ChoiceLogLikelihoods(GenerationEngine& engine, const ServingModel& served,
                                                         const std::string& prompt, const ChoiceSet& set,
                                                         const std::string& where, std::ofstream* details) {
  const std::vector<int64_t> context = Widen(served.tokenizer->Encode(prompt, {.add_bos = true}));
  std::vector<double> lls;
  for (const std::string& choice : set.choices) {
    const std::vector<int64_t> whole = Widen(served.tokenizer->Encode(prompt + choice, {.add_bos = true}));
    if (whole.size() <= context.size())
      return absl::InvalidArgumentError(absl::StrCat(where, ": answer '", choice, "' adds no tokens"));
    const std::vector<int64_t> continuation(whole.begin() + context.size(), whole.end());
    absl::StatusOr<std::vector<double>> logprobs = engine.ContinuationLogProbs(context, continuation);
    if (!logprobs.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", logprobs.status().message()));
    double sum = 0.0;
    for (double lp : *logprobs) sum += lp;
    lls.push_back(sum);
    if (details != nullptr)
      *details << Json{{"item", where}, {"prompt_text", prompt}, {"choice", choice}, {"prompt_ids", context},
                       {"continuation_ids", continuation}, {"loglikelihood", sum}}.dump() << "\n";
  }
  return lls;
}

}  // namespace

absl::StatusOr<TaskResult> ScoreTaskFile(GenerationEngine& engine, const ServingModel& served, const std::string& file,
                                   std::ofstream* details) {
  absl::StatusOr<EvalTask> task = ReadEvalTask(file);
  if (!task.ok()) return task.status();
  TaskResult r{file, *std::move(task)};
  for (size_t i = 0; i < r.task.items.size(); ++i) {
    const EvalItem& item = r.task.items[i];
    const std::string where = absl::StrCat(file, ": item ", i);
    absl::StatusOr<std::vector<double>> lls =
        ChoiceLogLikelihoods(engine, served, item.prompt, item.choices, where, details);
    if (!lls.ok()) return lls.status();
    const ChoiceScores s = ScoreChoices(item.choices, *lls);
    r.acc += s.correct;
    r.acc_norm += s.correct_norm;
    if (item.mc2) {
      absl::StatusOr<std::vector<double>> mc2 =
          ChoiceLogLikelihoods(engine, served, item.prompt, *item.mc2, where + " (mc2)", details);
      if (!mc2.ok()) return mc2.status();
      r.mc2 += ScoreChoices(*item.mc2, *mc2).true_mass;
    } else {
      r.mc2 += s.true_mass;
    }
  }
  const double n = static_cast<double>(r.task.items.size());
  r.acc /= n;
  r.acc_norm /= n;
  r.mc2 /= n;
  return r;
}

}  // namespace agora
