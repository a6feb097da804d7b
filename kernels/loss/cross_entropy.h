// Cross-entropy losses that never hold a float32 [tokens, vocab] matrix, as differentiable ATen functions.
//
// LinearCrossEntropy: the lm_head projection fused with the loss. The vocabulary is cut into tiles; each tile's
// logits [N, tile] are computed (cuBLAS on CUDA, fp32 accumulation and output), folded into every row's online
// log-sum-exp, and dropped. Backward recomputes each tile, turns it into its gradient in place and multiplies it
// into grad_hidden (accumulated in fp32 over tiles) and grad_weight (one tile of rows at a time). On CUDA the
// per-tile work is done by the kernels of loss_kernels.h; elsewhere by the same algorithm in ATen ops
// (cross_entropy_cpu.h, which also keeps the CPU's memory at one tile). linear_cross_entropy.cpp drives the tiles;
// NOTES.md has the design and the cost model. The training head loss (models/causal_lm_loss.h) calls it with the
// default options.
//
// Lab code, reached by the kernel tests and benchmarks but by no recipe: label_smoothing and z_loss (the kernels
// carry them so they can be checked against torch's and PaLM's definitions before a recipe key exposes them), and
// CrossEntropy over given logits (logits_cross_entropy.cpp), forward and backward in one pass per row: the gradient
// is written during the forward (over the logits themselves with in_place) and only scaled by the incoming
// gradient in backward. It is the one-kernel baseline the fused loss is benchmarked against.
//
// Both: targets are int64, kIgnoreLabel (-100) marks rows that contribute nothing (loss, log-prob and gradient 0);
// any other target must lie in [0, vocab). Per row:
//   loss    = lse - (1 - label_smoothing) * x[target] - label_smoothing * mean(x) + z_loss * lse^2
//   logprob = x[target] - lse                     (log softmax at the target, what preference objectives sum)
// with x the row's logits and lse their log-sum-exp. label_smoothing is torch's (cross_entropy(...,
// label_smoothing=)); z_loss is PaLM's auxiliary lse^2 term.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "util/ignore_label.h"

namespace agora::loss {

struct CrossEntropyOptions {
  double label_smoothing = 0.0;  // lab
  double z_loss = 0.0;           // lab
  // LinearCrossEntropy: vocabulary columns per tile; 0 picks the widest tile (a multiple of 128) whose fp32
  // logits [N, tile] fit in tile_bytes (backward adds the tile's gradient in the inputs' dtype). Wider tiles mean
  // fewer passes over grad_hidden's fp32 accumulator; NOTES.md has the trade-off.
  int64_t vocab_tile = 0;
  int64_t tile_bytes = int64_t{512} << 20;
};

// Per-token results, [N] float32 each.
struct TokenLosses {
  at::Tensor loss;     // differentiable
  at::Tensor logprob;  // differentiable for LinearCrossEntropy, not for CrossEntropy
  at::Tensor lse;      // not differentiable; 0 for ignored rows
};

// hidden: [N, D]; weight: [V, D] (same dtype: float32, bfloat16 or float16; same device); targets: [N] int64.
// Differentiable with respect to hidden and weight (a weight without requires_grad gets no grad_weight work).
TokenLosses LinearCrossEntropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                               const CrossEntropyOptions& options = {});

// Lab. logits: [N, V] float32, bfloat16 or float16 with contiguous rows; targets: [N] int64. With in_place the logits'
// memory is reused for their gradient: they must not be read afterwards (their version counter is bumped, so an
// autograd node that saved them fails loudly instead of reading gradients).
TokenLosses CrossEntropy(const at::Tensor& logits, const at::Tensor& targets, const CrossEntropyOptions& options = {},
                         bool in_place = false);

// The mean of per-token losses over non-ignored targets; 0 (not NaN) when every target is ignored. (The trainer sums
// per-token losses itself, normalising over the whole optimizer step; this is torch's reduction="mean", for the
// tests and benchmarks that compare against it.)
at::Tensor MeanOverTargets(const at::Tensor& token_loss, const at::Tensor& targets);

}  // namespace agora::loss
