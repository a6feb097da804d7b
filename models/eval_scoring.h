// Multiple-choice evaluation (data/eval_tasks.h) by the log-likelihood of each answer after its prompt, through
// the engine's prefix cache so a question's prompt is computed once for all its answers: what `agora eval` and
// the closed loop of `agora simulate` score.
#pragma once

#include <fstream>
#include <string>

#include "absl/status/statusor.h"
#include "data/eval_tasks.h"
#include "models/generation_engine.h"
#include "models/serving_model.h"

namespace agora {

struct TaskResult {
  std::string file;
  EvalTask task;
  double acc = 0, acc_norm = 0, mc2 = 0;
};

// Reads and scores the task file. Continuations are tokenised as lm-evaluation-harness does: what encoding
// prompt + choice adds after the prompt's own encoding. `details` (may be null) gets a JSON line per answer.
absl::StatusOr<TaskResult> ScoreTaskFile(GenerationEngine& engine, const ServingModel& served,
                                         const std::string& file, std::ofstream* details);

}  // namespace agora
