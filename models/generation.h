// Batched autoregressive decoding with a KV cache: greedy or sampled (temperature, top-k, top-p, seeded).
// Prompts of different lengths are left-padded into one batch; padding keys are masked out and positions
// restart at 0 for every prompt, so each row computes what it would compute alone.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/llama.h"

namespace agora {

struct SamplingOptions {
  int64_t max_new_tokens = 64;
  double temperature = 0.0;  // 0: greedy (argmax)
  int64_t top_k = 0;         // 0: no top-k filter
  double top_p = 1.0;        // 1: no nucleus filter
  uint64_t seed = 0;
  std::vector<int64_t> stop_ids;  // a row stops after emitting one of these (the stop token is kept)
};

// Returns, per prompt, the generated tokens (not the prompt).
std::vector<std::vector<int64_t>> Generate(LlamaForCausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                                           const SamplingOptions& options);

// Probabilities [B, V] (fp32) after temperature, top-k and top-p filtering of logits [B, V]; filtered entries
// are exactly 0. Exposed for tests.
at::Tensor SamplingProbabilities(const at::Tensor& logits, const SamplingOptions& options);

}  // namespace agora
