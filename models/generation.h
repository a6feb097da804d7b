// Generation for a fixed list of prompts, on the engine (models/generation_engine.h): greedy or sampled, each
// prompt with the same options and its own generator (seeded from options.seed and its index).
#pragma once

#include <cstdint>
#include <vector>

#include "models/llama.h"
#include "models/sampling.h"

namespace agora {

// Returns, per prompt, the generated tokens (not the prompt). Throws c10::Error for a request the engine refuses.
std::vector<std::vector<int64_t>> Generate(LlamaForCausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                                           const SamplingOptions& options);

}  // namespace agora
