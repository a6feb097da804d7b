#include "models/generation.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/grad_mode.h>

namespace agora {

at::Tensor SamplingProbabilities(const at::Tensor& logits, const SamplingOptions& options) {
  TORCH_CHECK(options.temperature > 0, "SamplingProbabilities needs temperature > 0");
  at::Tensor scaled = logits.to(at::kFloat) / options.temperature;
  const int64_t vocab = scaled.size(-1);
  if (options.top_k > 0 && options.top_k < vocab) {
    at::Tensor kth = std::get<0>(scaled.topk(options.top_k, -1)).narrow(-1, options.top_k - 1, 1);
    scaled = scaled.masked_fill(scaled < kth, -std::numeric_limits<float>::infinity());
  }
  at::Tensor probs = scaled.softmax(-1);
  if (options.top_p < 1.0) {
    // Keep the smallest set of most likely tokens whose mass reaches top_p: a token stays if the mass of the
    // tokens strictly before it (in descending order) is still below top_p, so the most likely always stays.
    auto [sorted, order] = probs.sort(-1, /*descending=*/true);
    at::Tensor mass_before = sorted.cumsum(-1) - sorted;
    at::Tensor keep_sorted = mass_before < options.top_p;
    at::Tensor keep = at::zeros_like(keep_sorted).scatter(-1, order, keep_sorted);
    probs = probs * keep;
    probs = probs / probs.sum(-1, /*keepdim=*/true);
  }
  return probs;
}

namespace {

// The next token of every row from the last position's logits [B, V].
at::Tensor NextTokens(const at::Tensor& logits, const SamplingOptions& options, at::Generator& generator) {
  if (options.temperature <= 0) return logits.argmax(-1);
  // Sampling happens on the CPU with a CPU generator, so a seed gives the same tokens on every device.
  at::Tensor probs = SamplingProbabilities(logits, options).to(at::kCPU);
  return at::multinomial(probs, 1, /*replacement=*/false, generator).squeeze(-1).to(logits.device());
}

}  // namespace

std::vector<std::vector<int64_t>> Generate(LlamaForCausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                                           const SamplingOptions& options) {
  torch::NoGradGuard no_grad;
  const int64_t batch = static_cast<int64_t>(prompts.size());
  std::vector<std::vector<int64_t>> generated(batch);
  if (batch == 0 || options.max_new_tokens <= 0) return generated;
  int64_t prompt_len = 0;
  for (const auto& p : prompts) {
    TORCH_CHECK(!p.empty(), "Generate: every prompt needs at least one token");
    prompt_len = std::max<int64_t>(prompt_len, static_cast<int64_t>(p.size()));
  }
  const int64_t capacity = prompt_len + options.max_new_tokens;
  const LlamaConfig& config = model->config();
  TORCH_CHECK(capacity <= config.max_position_embeddings, "Generate: prompt (", prompt_len, ") + max_new_tokens (",
              options.max_new_tokens, ") exceeds max_position_embeddings (", config.max_position_embeddings, ")");
  const at::Device device = model->options().device;

  // Left-pad into [B, prompt_len]; key_valid covers the whole cache, generated positions are always valid.
  const int64_t pad = config.pad_token_id.value_or(0);
  at::Tensor ids = at::full({batch, prompt_len}, pad, at::kLong);
  at::Tensor key_valid = at::ones({batch, capacity}, at::kBool);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t n = static_cast<int64_t>(prompts[b].size()), offset = prompt_len - n;
    ids[b].slice(0, offset).copy_(at::tensor(prompts[b], at::kLong));
    key_valid[b].slice(0, 0, offset).fill_(false);
  }
  ids = ids.to(device);
  key_valid = key_valid.to(device);
  // Each row's positions count only its real tokens (padding positions are clamped to 0; they are never seen).
  at::Tensor positions = (key_valid.slice(1, 0, prompt_len).to(at::kLong).cumsum(1) - 1).clamp_min(0);

  KVCache cache(config, batch, capacity, model->options().dtype, device);
  AttentionMask mask;
  mask.key_valid = key_valid;
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  std::vector<bool> finished(batch, false);

  at::Tensor hidden = model->forward(ids, positions, mask, &cache);
  at::Tensor next_positions = positions.select(1, prompt_len - 1).unsqueeze(1) + 1;
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    at::Tensor logits = model->Logits(hidden.select(1, hidden.size(1) - 1));
    at::Tensor next = NextTokens(logits, options, generator);
    // One device-to-host copy per step; the bookkeeping below is plain C++ on those ids.
    at::Tensor next_cpu = next.to(at::kCPU);
    const int64_t* next_ids = next_cpu.data_ptr<int64_t>();
    bool all_finished = true;
    for (int64_t b = 0; b < batch; ++b) {
      if (finished[b]) continue;
      generated[b].push_back(next_ids[b]);
      finished[b] = std::find(options.stop_ids.begin(), options.stop_ids.end(), next_ids[b]) != options.stop_ids.end();
      all_finished = all_finished && finished[b];
    }
    if (all_finished || step + 1 == options.max_new_tokens) break;
    // Finished rows keep decoding (their tokens are dropped): simpler than shrinking the batch and cache.
    hidden = model->forward(next.unsqueeze(1), next_positions, mask, &cache);
    next_positions = next_positions + 1;
  }
  return generated;
}

}  // namespace agora
