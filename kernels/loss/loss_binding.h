// What the cross-entropy bindings (linear_cross_entropy.cpp, logits_cross_entropy.cpp) and their CPU path
// (cross_entropy_cpu.cpp) share: argument checks, the kernels' dtype, and the per-row tensors the vocabulary-tile
// driver carries from tile to tile (the ATen twins of loss_kernels.h's LseState and GradTileParams).
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <cuda_runtime_api.h>

#include "kernels/loss/cross_entropy.h"
#include "kernels/loss/loss_kernels.h"

namespace agora::loss {

kernels::LossDType KernelDType(at::ScalarType type);
void CheckLaunch(cudaError_t error, const char* kernel);

// hidden/logits: float32, bfloat16 or float16.
void CheckFloatType(const at::Tensor& t, const char* function, const char* name);
void CheckOptions(const CrossEntropyOptions& options, const char* function);
// Targets are [rows] int64 on `device`, each in [0, vocab) or kIgnoreLabel. Costs one device sync; a bad target
// would otherwise read outside a row.
void CheckTargets(const at::Tensor& targets, int64_t rows, int64_t vocab, const at::Device& device,
                  const char* function);

// The rows' online log-sum-exp over the tiles seen so far (loss_kernels.h, LseState).
struct RowState {
  at::Tensor max, sum_exp, sum_logits, target_logit;  // [rows] fp32
};

// Per-row coefficients of a tile's gradient (loss_kernels.h, GradTileParams), 0 for ignored rows.
struct GradCoefficients {
  at::Tensor lse, p, target, uniform;  // [rows] fp32
};

}  // namespace agora::loss
