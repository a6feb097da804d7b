// What `agora train --config recipes/X.yaml key=value ...` runs, for every objective (sft, stable_alignment,
// dpo); it reads top to bottom in run_training.cpp: run folder, logs, tokenizer, data, model, optimizer, schedule,
// resume, loop.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "trainer/recipe.h"
#include "trainer/train_loop.h"

namespace agora {

// The loop's options from the recipe's training, scheduler, eval, checkpoint and logging sections: the step count
// from training.max_steps or the epochs over `batches_per_epoch`, the warm-up from its steps or its ratio.
// InvalidArgument when both warm-up keys are set.
absl::StatusOr<LoopOptions> LoopOptionsFrom(const Recipe& recipe, int64_t batches_per_epoch, const at::Device& device);

// `terminal`: whether stderr is a terminal (progress bar) or a file/pipe (plain lines).
absl::StatusOr<LoopEnd> RunTraining(const Recipe& recipe, bool terminal);

}  // namespace agora
