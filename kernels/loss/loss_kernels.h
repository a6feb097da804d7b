// Launchers of the cross-entropy kernels (linear_cross_entropy_tiles.cu, cross_entropy.cu). Plain parameter structs
// and raw pointers: no torch here, so nvcc never parses ATen; the bindings (linear_cross_entropy.cpp,
// logits_cross_entropy.cpp) fill the structs from tensors. Design, FLOP/byte counts and the roofline: NOTES.md beside this file.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace agora::kernels {

enum class LossDType { kFloat32, kBFloat16, kFloat16 };

// Per-row running state of the online log-sum-exp over vocabulary tiles, [rows] fp32 each, in device memory.
// Start: max = -inf, sum_exp = sum_logits = target_logit = 0. After the last tile: lse = max + log(sum_exp).
struct LseState {
  float* max;
  float* sum_exp;       // sum over columns seen so far of exp(logit - max)
  float* sum_logits;    // sum of the logits seen so far (label smoothing's uniform term)
  float* target_logit;  // the logit of the row's target, written by the tile that holds it
};

// One vocabulary tile of logits, fp32 [rows, cols] row-major (row stride cols), columns col_offset ..
// col_offset + cols - 1 of the vocabulary.
struct LogitsTile {
  const float* logits;
  int64_t rows;
  int64_t cols;
  int64_t col_offset;
  const int64_t* targets;  // [rows]; ignored rows (any value outside the tile) are harmless here
};

// Folds the tile into the rows' running state.
cudaError_t LaunchLseTileUpdate(const LogitsTile& tile, const LseState& state, cudaStream_t stream);

// The gradient of a tile, recomputed from the tile's logits and the rows' final lse:
//   grad[i, j] = coef_p[i] * softmax[i, j] - coef_uniform[i] - (col_offset + j == targets[i] ? coef_target[i] : 0)
// (linear_cross_entropy.cpp derives the three per-row coefficients from the outputs' gradients). `grad` is
// [rows, cols] row-major of `grad_dtype`; it may alias `tile.logits` when grad_dtype is kFloat32.
struct GradTileParams {
  const float* lse;
  const float* coef_p;
  const float* coef_target;
  const float* coef_uniform;
  void* grad;
  LossDType grad_dtype;
};
cudaError_t LaunchGradTile(const LogitsTile& tile, const GradTileParams& params, cudaStream_t stream);

// Cross-entropy over given logits [rows, vocab] (row stride `ld`), forward and backward in one pass per row:
// the first sweep of a row finds its lse, the second writes d loss[i] / d logits[i, :] into `grad` (which may be
// `logits` itself: the gradient then replaces the logits in place).
//   loss[i] = lse - (1 - smoothing) * x[target] - smoothing * mean_j x[j] + z_loss * lse^2, 0 when ignored.
struct CrossEntropyParams {
  void* logits;
  LossDType dtype;
  int64_t rows;
  int64_t vocab;
  int64_t ld;
  const int64_t* targets;
  int64_t ignore_index;
  float label_smoothing;
  float z_loss;
  float* loss;              // [rows]
  float* logprob;           // [rows]: log softmax(x)[target], 0 when ignored
  float* lse;               // [rows]
  void* grad;               // [rows, ld] of `dtype`, may equal `logits`; null = forward only
};
cudaError_t LaunchCrossEntropy(const CrossEntropyParams& params, cudaStream_t stream);

}  // namespace agora::kernels
