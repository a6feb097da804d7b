// The language-modelling loss on top of the head: per-token negative log-likelihoods (the quantity every
// objective builds on) and transformers' causal-LM loss. The fused head+loss kernel plugs in here later.
#pragma once

#include <ATen/core/Tensor.h>

namespace agora {

constexpr int64_t kIgnoreIndex = -100;

// -log softmax(logits)[target] in fp32 (fp64 for fp64 logits) for every position; positions whose target is kIgnoreIndex give 0.
// logits: [..., V]; targets: [...] int64.
at::Tensor TokenNll(const at::Tensor& logits, const at::Tensor& targets);

// Position t predicts labels[t + 1]; the mean over trained (!= kIgnoreIndex) targets, as transformers computes
// LlamaForCausalLM(labels=...).loss. logits: [B, S, V]; labels: [B, S].
at::Tensor CausalLmLoss(const at::Tensor& logits, const at::Tensor& labels);

}  // namespace agora
