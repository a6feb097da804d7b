// The per-tile halves of the fused linear + cross-entropy (linear_cross_entropy.cpp drives the tiles; cuBLAS
// computes each tile's logits): folding a tile into the rows' online log-sum-exp (forward), and turning a
// recomputed tile into its gradient (backward). Both read the fp32 tile once, one block per row.
#include "kernels/loss/loss_kernels.h"
#include "kernels/loss/row_stats.cuh"

namespace agora::kernels {
namespace {

using detail::kThreads;
using detail::RowStats;

__global__ void __launch_bounds__(kThreads) LseTileUpdateKernel(LogitsTile tile, LseState state) {
  const int64_t row = blockIdx.x;
  const float* x = tile.logits + row * tile.cols;
  RowStats s = detail::EmptyStats();
  if (tile.cols % 4 == 0) {  // rows start 16-byte aligned: 128-bit loads
    const float4* x4 = reinterpret_cast<const float4*>(x);
    for (int64_t j = threadIdx.x; j < tile.cols / 4; j += kThreads) {
      const float4 v = x4[j];
      detail::Add(s, v.x);
      detail::Add(s, v.y);
      detail::Add(s, v.z);
      detail::Add(s, v.w);
    }
  } else {
    for (int64_t j = threadIdx.x; j < tile.cols; j += kThreads) detail::Add(s, x[j]);
  }
  s = detail::BlockReduce(s);
  if (threadIdx.x != 0) return;
  // One block owns the row and tiles run in stream order, so the read-modify-write of the state needs no atomics.
  const RowStats merged = detail::Merge({state.max[row], state.sum_exp[row], state.sum_logits[row]}, s);
  state.max[row] = merged.max;
  state.sum_exp[row] = merged.sum_exp;
  state.sum_logits[row] = merged.sum;
  const int64_t t = tile.targets[row] - tile.col_offset;
  if (t >= 0 && t < tile.cols) state.target_logit[row] = x[t];
}

template <typename T>
__global__ void __launch_bounds__(kThreads) GradTileKernel(LogitsTile tile, GradTileParams p) {
  const int64_t row = blockIdx.x;
  const float* x = tile.logits + row * tile.cols;
  T* grad = static_cast<T*>(p.grad) + row * tile.cols;
  const float a = p.coef_p[row], b = p.coef_target[row], c = p.coef_uniform[row];
  if (a == 0.f && b == 0.f && c == 0.f) {  // ignored row (or no gradient): skip the exps
    for (int64_t j = threadIdx.x; j < tile.cols; j += kThreads) grad[j] = detail::FromFloat<T>(0.f);
    return;
  }
  const float lse = p.lse[row];
  const int64_t t = tile.targets[row] - tile.col_offset;
  // Each thread reads x[j] before writing grad[j] at the same place: safe when grad aliases the tile.
  for (int64_t j = threadIdx.x; j < tile.cols; j += kThreads) {
    float g = a * expf(x[j] - lse) - c;
    if (j == t) g -= b;
    grad[j] = detail::FromFloat<T>(g);
  }
}

}  // namespace

cudaError_t LaunchLseTileUpdate(const LogitsTile& tile, const LseState& state, cudaStream_t stream) {
  if (tile.rows == 0 || tile.cols == 0) return cudaSuccess;
  LseTileUpdateKernel<<<tile.rows, kThreads, 0, stream>>>(tile, state);
  return cudaGetLastError();
}

cudaError_t LaunchGradTile(const LogitsTile& tile, const GradTileParams& params, cudaStream_t stream) {
  if (tile.rows == 0 || tile.cols == 0) return cudaSuccess;
  switch (params.grad_dtype) {
    case LossDType::kFloat32: GradTileKernel<float><<<tile.rows, kThreads, 0, stream>>>(tile, params); break;
    case LossDType::kBFloat16: GradTileKernel<__nv_bfloat16><<<tile.rows, kThreads, 0, stream>>>(tile, params); break;
    case LossDType::kFloat16: GradTileKernel<__half><<<tile.rows, kThreads, 0, stream>>>(tile, params); break;
  }
  return cudaGetLastError();
}

}  // namespace agora::kernels
