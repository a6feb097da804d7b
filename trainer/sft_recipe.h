// The supervised fine-tuning recipe: `agora train --config recipes/X.yaml key=value ...` reads top to bottom in
// sft_recipe.cpp — run folder, logs, tokenizer, data, model, optimizer, schedule, resume, loop.
#pragma once

#include "absl/status/statusor.h"
#include "trainer/recipe.h"
#include "trainer/train_loop.h"

namespace agora {

// `terminal`: whether stderr is a terminal (progress bar) or a file/pipe (plain lines).
absl::StatusOr<LoopEnd> RunSftRecipe(const Recipe& recipe, bool terminal);

}  // namespace agora
