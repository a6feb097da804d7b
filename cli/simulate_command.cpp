// agora simulate --config RECIPE.yaml [key=value ...]: the recipe's simulation (simulate/), or with
// closed_loop.rounds >= 1 the loop simulate -> train -> eval. Exit codes as agora train: 0 when finished or
// stopped with everything saved (rerun to resume), 1 on an error, 2 on bad usage.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "cli/commands.h"
#include "simulate/closed_loop.h"
#include "trainer/recipe.h"

ABSL_DECLARE_FLAG(std::string, config);  // cli/train_command.cpp

namespace agora::cli {

int RunSimulate(const std::vector<char*>& positional_args) {
  const std::string config = absl::GetFlag(FLAGS_config);
  if (config.empty()) {
    std::fprintf(stderr, "agora simulate: --config RECIPE.yaml is required (recipes/closed_loop_*.yaml)\n");
    return 2;
  }
  // Every rank would simulate into the same journal: the loop is one process (its training stage uses one device).
  if (const char* world = std::getenv("WORLD_SIZE"); world != nullptr && std::atoi(world) > 1) {
    std::fprintf(stderr, "agora simulate: runs as one process (WORLD_SIZE=%s); start it without a launcher\n", world);
    return 2;
  }
  std::vector<std::string> overrides(positional_args.begin() + 1, positional_args.end());
  absl::StatusOr<Recipe> recipe = LoadRecipe(config, overrides);
  if (!recipe.ok()) {
    std::fprintf(stderr, "agora simulate: %s\n", std::string(recipe.status().message()).c_str());
    return 2;
  }
  if (recipe->simulate.questions.empty() && recipe->simulate.method != SimulationMethod::kSelfAlign) {
    std::fprintf(stderr, "agora simulate: simulate.questions is required (a question pool, TXT or JSONL)\n");
    return 2;
  }
  absl::StatusOr<LoopOutcome> outcome = RunSimulateRecipe(*recipe, isatty(STDERR_FILENO) == 1);
  if (!outcome.ok()) {
    std::fprintf(stderr, "agora simulate: %s\n", std::string(outcome.status().message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace agora::cli
