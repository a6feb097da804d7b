// Multiple-choice evaluation tasks in the formats the public sets are published in, and how an item is scored
// from the log-likelihood of each answer after its prompt (as lm-evaluation-harness scores them):
//   - TruthfulQA's mc_task.json: [{question, mc1_targets: {answer: 0|1}, mc2_targets: {answer: 0|1}}];
//   - BIG-bench's task.json (HHH alignment among them): {examples: [{input, target_scores: {answer: score}}]};
//   - plain JSONL (*.jsonl): {question, choices: [...], answer: index or the answer's text} per line.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace agora {

struct ChoiceSet {
  std::vector<std::string> choices;  // continuations, each scored after the prompt (with its leading space)
  std::vector<double> scores;        // the best score marks the right answers (1/0 in every format above)
};

struct EvalItem {
  std::string prompt;            // "Q: ...\nA:", "Question: ...\nAnswer:", or BIG-bench's input as it is
  ChoiceSet choices;             // TruthfulQA: mc1_targets (one true answer)
  std::optional<ChoiceSet> mc2;  // TruthfulQA: mc2_targets (several true answers)
};

struct EvalTask {
  std::string name;    // the file's stem (BIG-bench: its "name" when given)
  std::string format;  // truthfulqa_mc | bigbench | jsonl
  std::vector<EvalItem> items;
};

// InvalidArgument naming the file and the item (0-based; JSONL: the 1-based line) for anything malformed: a
// missing field, no choices, no right answer, an answer index out of range, a repeated choice.
absl::StatusOr<EvalTask> ReadEvalTask(const std::filesystem::path& path);

// One choice set scored from each choice's summed log-likelihood:
//   correct:      the most likely choice is a right one (lm-eval's acc; TruthfulQA's MC1)
//   correct_norm: the same with log-likelihoods divided by the choice's length in bytes (acc_norm)
//   true_mass:    the probability mass on the right choices, normalised over all of them (TruthfulQA's MC2)
struct ChoiceScores {
  bool correct = false;
  bool correct_norm = false;
  double true_mass = 0.0;
};
ChoiceScores ScoreChoices(const ChoiceSet& set, const std::vector<double>& loglikelihoods);

}  // namespace agora
