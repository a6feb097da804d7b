// agora train --config recipes/X.yaml [key=value ...]: fine-tune as the recipe says. Exit codes: 0 when the run
// finished, stopped at training.stop_after_steps, or was preempted (SIGTERM/SIGINT) after saving a checkpoint;
// 1 on any error; 2 on bad usage.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "trainer/recipe.h"
#include "trainer/run_training.h"

ABSL_FLAG(std::string, config, "", "recipe YAML file (see recipes/); key=value arguments override its keys");

namespace agora::cli {

int RunTrain(const std::vector<char*>& positional_args) {
  const std::string config = absl::GetFlag(FLAGS_config);
  if (config.empty()) {
    std::fprintf(stderr, "agora train: --config RECIPE.yaml is required\n");
    return 2;
  }
  std::vector<std::string> overrides(positional_args.begin() + 1, positional_args.end());
  absl::StatusOr<Recipe> recipe = LoadRecipe(config, overrides);
  if (!recipe.ok()) {
    std::fprintf(stderr, "agora train: %s\n", std::string(recipe.status().message()).c_str());
    return 2;
  }
  absl::StatusOr<LoopEnd> end = RunTraining(*recipe, isatty(STDERR_FILENO) == 1);
  if (!end.ok()) {
    std::fprintf(stderr, "agora train: %s\n", std::string(end.status().message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace agora::cli
