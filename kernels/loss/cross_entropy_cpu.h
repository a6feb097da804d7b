// The CPU path of the cross-entropy kernels: the kernels' math (loss_kernels.h) as ATen ops in fp32, so the CPU
// tests check the algorithm itself (the online log-sum-exp over vocabulary tiles, the recomputed gradient tile)
// against float64 torch, and a CPU run never holds more than one tile of logits.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "kernels/loss/loss_binding.h"

namespace agora::loss::cpu {

// LaunchLseTileUpdate: folds a tile of fp32 logits [rows, cols] (vocabulary columns col_offset ..) into `state`.
void FoldTile(const at::Tensor& logits, int64_t col_offset, const at::Tensor& targets, RowState& state);

// LaunchGradTile: turns the tile of fp32 logits into its gradient in place, then copies it into `grad` (of the
// inputs' dtype) unless `grad` is `logits` itself.
void GradTile(at::Tensor& logits, int64_t col_offset, const at::Tensor& targets, const GradCoefficients& c,
              at::Tensor& grad);

// LaunchCrossEntropy over logits [rows, vocab]: per-row loss, logprob and lse ([rows] fp32, 0 for ignored rows)
// and d loss[i] / d logits[i, :] in fp32.
struct LogitsLosses {
  at::Tensor loss, logprob, lse, grad;
};
LogitsLosses CrossEntropy(const at::Tensor& logits, const at::Tensor& targets, double label_smoothing, double z_loss);

}  // namespace agora::loss::cpu
