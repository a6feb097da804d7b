// The language-modelling loss on top of the head: per-token negative log-likelihoods (the quantity every
// objective builds on) and transformers' causal-LM loss.
#pragma once

#include <ATen/core/Tensor.h>

#include "util/ignore_label.h"

namespace agora {

// -log softmax(logits)[target] in fp32 (fp64 for fp64 logits) for every position; positions whose target is kIgnoreLabel give 0.
// logits: [..., V]; targets: [...] int64.
at::Tensor TokenNll(const at::Tensor& logits, const at::Tensor& targets);

// Position t predicts labels[t + 1]; the mean over trained (!= kIgnoreLabel) targets, as transformers computes
// LlamaForCausalLM(labels=...).loss. logits: [B, S, V]; labels: [B, S].
at::Tensor CausalLmLoss(const at::Tensor& logits, const at::Tensor& labels);

// How HeadTokenNll gets from hidden states to per-token NLL (the recipe's `loss` key).
enum class HeadLoss {
  kTorch,  // logits = hidden @ weight^T, then TokenNll: holds the [N, V] logits (and their fp32 copy)
  kFused,  // kernels/loss LinearCrossEntropy: vocabulary tiles with an online log-sum-exp, never [N, V]; CUDA
           // kernels on the GPU, the same tiling in ATen ops on the CPU
};

// -log softmax(hidden @ weight^T)[target] in fp32 for every row, 0 where the target is kIgnoreLabel.
// hidden: [N, D]; weight: the head [V, D], same dtype; targets: [N] int64. Differentiable with respect to hidden
// and weight (tied embeddings simply receive both gradients).
at::Tensor HeadTokenNll(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets, HeadLoss how);

}  // namespace agora
