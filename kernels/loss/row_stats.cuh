// Device helpers shared by the cross-entropy kernels: the online log-sum-exp of a row as a mergeable triple, a
// block-wide reduction of it, and dtype conversions. Every kernel here gives one block of kThreads to one row.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

namespace agora::kernels::detail {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// What a row's loss needs of a set of its logits: their max, the sum of exp(x - max) (so lse = max + log(sum_exp)
// without overflow) and their plain sum (label smoothing's uniform term). Two triples merge exactly, in any
// order, so threads, warps and vocabulary tiles each fold their share and combine.
struct RowStats {
  float max;
  float sum_exp;
  float sum;
};

__device__ __forceinline__ RowStats EmptyStats() { return {-INFINITY, 0.f, 0.f}; }

__device__ __forceinline__ void Add(RowStats& s, float x) {
  if (x > s.max) {  // a new max rescales what was summed so far
    s.sum_exp = s.sum_exp * expf(s.max - x) + 1.f;
    s.max = x;
  } else if (x != -INFINITY) {  // a masked (-inf) logit adds nothing; exp(-inf - -inf) would be NaN
    s.sum_exp += expf(x - s.max);
  }
  s.sum += x;
}

__device__ __forceinline__ RowStats Merge(const RowStats& a, const RowStats& b) {
  const float m = fmaxf(a.max, b.max);
  if (m == -INFINITY) return {m, 0.f, a.sum + b.sum};  // both empty (or all masked)
  return {m, a.sum_exp * expf(a.max - m) + b.sum_exp * expf(b.max - m), a.sum + b.sum};
}

__device__ __forceinline__ RowStats ShuffleXor(const RowStats& s, int offset) {
  return {__shfl_xor_sync(0xffffffffu, s.max, offset), __shfl_xor_sync(0xffffffffu, s.sum_exp, offset),
          __shfl_xor_sync(0xffffffffu, s.sum, offset)};
}

// Every thread of the block gets the merge of all threads' stats. Contains __syncthreads: a thread past it knows
// every thread has finished whatever it did before calling (the in-place kernels rely on that).
__device__ __forceinline__ RowStats BlockReduce(RowStats s) {
  __shared__ RowStats per_warp[kWarps];
  for (int offset = 16; offset > 0; offset /= 2) s = Merge(s, ShuffleXor(s, offset));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) per_warp[warp] = s;
  __syncthreads();
  s = lane < kWarps ? per_warp[lane] : EmptyStats();
  for (int offset = 16; offset > 0; offset /= 2) s = Merge(s, ShuffleXor(s, offset));
  return s;
}

__device__ __forceinline__ float ToFloat(float x) { return x; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float ToFloat(__half x) { return __half2float(x); }

template <typename T>
__device__ __forceinline__ T FromFloat(float x);
template <>
__device__ __forceinline__ float FromFloat<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float x) { return __float2bfloat16(x); }
template <>
__device__ __forceinline__ __half FromFloat<__half>(float x) { return __float2half(x); }

}  // namespace agora::kernels::detail
