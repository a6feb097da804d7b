#include "models/sampling.h"

#include <limits>

#include <ATen/ATen.h>

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
  if (options.min_p > 0.0) {
    // The most likely token always passes (its probability is the threshold's reference).
    at::Tensor threshold = std::get<0>(probs.max(-1, /*keepdim=*/true)) * options.min_p;
    probs = probs * (probs >= threshold);
    probs = probs / probs.sum(-1, /*keepdim=*/true);
  }
  return probs;
}

void AdjustLogits(at::Tensor& logits, const SamplingOptions& options, const std::vector<int64_t>& context,
                  const std::vector<int64_t>* allowed) {
  float* x = logits.data_ptr<float>();
  const int64_t vocab = logits.numel();
  constexpr float kNever = -std::numeric_limits<float>::infinity();
  if (options.repetition_penalty != 1.0) {
    std::vector<bool> seen(vocab, false);
    for (int64_t t : context) {
      if (t < 0 || t >= vocab || seen[t]) continue;
      seen[t] = true;
      x[t] = x[t] > 0 ? x[t] / options.repetition_penalty : x[t] * options.repetition_penalty;
    }
  }
  const int64_t n = options.no_repeat_ngram_size;
  if (n > 0 && static_cast<int64_t>(context.size()) >= n) {
    // Every earlier n-gram whose first n - 1 tokens equal the last n - 1 tokens bans its last token.
    const int64_t len = static_cast<int64_t>(context.size());
    for (int64_t start = 0; start + n <= len; ++start) {
      bool same = true;
      for (int64_t i = 0; i + 1 < n && same; ++i) same = context[start + i] == context[len - n + 1 + i];
      const int64_t banned = context[start + n - 1];
      if (same && banned >= 0 && banned < vocab) x[banned] = kNever;
    }
  }
  for (const auto& [token, bias] : options.logit_bias)
    if (token >= 0 && token < vocab) x[token] += static_cast<float>(bias);
  if (allowed != nullptr) {
    std::vector<std::pair<int64_t, float>> kept;
    for (int64_t t : *allowed)
      if (t >= 0 && t < vocab) kept.emplace_back(t, x[t]);
    logits.fill_(kNever);
    for (const auto& [t, value] : kept) x[t] = value;
  }
}

int64_t SampleToken(const at::Tensor& logits, const SamplingOptions& options, at::Generator& generator) {
  if (options.temperature <= 0) return logits.argmax().item<int64_t>();
  const at::Tensor probs = SamplingProbabilities(logits.unsqueeze(0), options);
  return at::multinomial(probs, 1, /*replacement=*/false, generator).item<int64_t>();
}

}  // namespace agora
