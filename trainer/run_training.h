// What `agora train --config recipes/X.yaml key=value ...` runs, for every objective (sft, stable_alignment,
// dpo); it reads top to bottom in run_training.cpp: run folder, logs, tokenizer, data, model, optimizer, schedule,
// resume, loop.
#pragma once

#include "absl/status/statusor.h"
#include "trainer/recipe.h"
#include "trainer/train_loop.h"

namespace agora {

// `terminal`: whether stderr is a terminal (progress bar) or a file/pipe (plain lines).
absl::StatusOr<LoopEnd> RunTraining(const Recipe& recipe, bool terminal);

}  // namespace agora
