// `agora simulate --config RECIPE.yaml [key=value ...]`: the recipe's simulate section run with its model
// (closed_loop.rounds = 0), or the closed loop (rounds >= 1), each round in output_dir/round_<k>/:
//   data/   the simulation with the current model (its journal, the training file, summary.json)
//   train/  a training run of the recipe on that file (LoRA: continuing the previous round's adapter; full:
//           from the previous round's weights), resumed if it was stopped
//   eval.json  closed_loop.eval_tasks scored with the tuned model (round_0/eval.json: the model before)
// then closed_loop.json and closed_loop.md, the table of eval per round. Every stage that finished is skipped on
// a rerun (summary.json, train/finished.json, eval.json are written last), so a stopped loop resumes where it
// stopped, mid-stage included.
#pragma once

#include "absl/status/statusor.h"
#include "trainer/recipe.h"

namespace agora {

enum class LoopOutcome { kFinished, kStopped };  // kStopped: a training stage was preempted or stopped early

absl::StatusOr<LoopOutcome> RunSimulateRecipe(const Recipe& recipe, bool terminal);

}  // namespace agora
