// What a resumed run may change of the recipe its run folder was started with. A checkpoint's weights, optimizer
// moments and data position only mean what they mean under the recipe that wrote them: another model, LoRA shape,
// dataset, tokenisation, batch size, objective or seed would silently train something else (a rank-8 recipe over
// a rank-16 checkpoint trained rank 16). Those keys are refused. How long to train, the learning rate and its
// schedule, evaluation, checkpointing, logging and the hardware may change: the run continues, and the change is
// logged and written to recipe.yaml, which always holds what runs.
#pragma once

#include <string>
#include <vector>

#include "trainer/recipe.h"

namespace agora {

struct RecipeChange {
  std::string key;
  std::string before;  // as the run folder's recipe.yaml has it
  std::string after;   // as this run has it
};

struct ResumeChanges {
  std::vector<RecipeChange> refused;
  std::vector<RecipeChange> allowed;
};

// Whether `key` may change on resume (the keys a resumed run may change, by section or by name).
bool MayChangeOnResume(const std::string& key);

ResumeChanges CompareForResume(const Recipe& saved, const Recipe& now);

// "lora.rank 16 -> 8, seed 1 -> 2".
std::string DescribeChanges(const std::vector<RecipeChange>& changes);

}  // namespace agora
