// Cross-entropy over given logits, forward and backward in one kernel: one block per row sweeps the row once for
// its online log-sum-exp (and the target and uniform terms), writes the row's loss, then sweeps it again writing
// the gradient, possibly over the logits themselves. Memory: one read for the forward and one read + one write
// for the gradient, with no [rows, vocab] buffer besides the logits.
#include <cstdint>

#include "kernels/loss/loss_kernels.h"
#include "kernels/loss/row_stats.cuh"

namespace agora::kernels {
namespace {

using detail::kThreads;
using detail::RowStats;

// Eight bf16/fp16 (four fp32) logits: one 16-byte load or store, the widest a thread issues. Two-byte accesses
// would need eight times the instructions for the same bytes, and this kernel is bound by memory.
template <typename T>
struct alignas(16) Pack16 {
  static constexpr int kSize = 16 / sizeof(T);
  T v[kSize];
};

template <typename T>
__global__ void __launch_bounds__(kThreads) CrossEntropyKernel(CrossEntropyParams p, bool vectorised) {
  constexpr int kPack = Pack16<T>::kSize;
  const int64_t row = blockIdx.x;
  T* x = static_cast<T*>(p.logits) + row * p.ld;
  T* grad = p.grad ? static_cast<T*>(p.grad) + row * p.ld : nullptr;
  const int64_t target = p.targets[row];
  if (target == p.ignore_index) {
    if (threadIdx.x == 0) p.loss[row] = p.logprob[row] = p.lse[row] = 0.f;
    if (grad)
      for (int64_t j = threadIdx.x; j < p.vocab; j += kThreads) grad[j] = detail::FromFloat<T>(0.f);
    return;
  }
  // Columns [0, packed) go 16 bytes at a time (the launcher checked that every row starts 16-byte aligned), the
  // rest one by one.
  const int64_t packed = vectorised ? p.vocab / kPack * kPack : 0;
  const Pack16<T>* x16 = reinterpret_cast<const Pack16<T>*>(x);
  // Read before BlockReduce's barrier, so no thread can have overwritten it yet (in place).
  const float target_logit = detail::ToFloat(x[target]);
  RowStats s = detail::EmptyStats();
  for (int64_t i = threadIdx.x; i < packed / kPack; i += kThreads) {
    const Pack16<T> in = x16[i];
    for (int k = 0; k < kPack; ++k) detail::Add(s, detail::ToFloat(in.v[k]));
  }
  for (int64_t j = packed + threadIdx.x; j < p.vocab; j += kThreads) detail::Add(s, detail::ToFloat(x[j]));
  s = detail::BlockReduce(s);
  const float lse = s.max + logf(s.sum_exp);
  const float eps = p.label_smoothing;
  if (threadIdx.x == 0) {
    p.loss[row] = lse - (1.f - eps) * target_logit - eps * (s.sum / p.vocab) + p.z_loss * lse * lse;
    p.logprob[row] = target_logit - lse;
    p.lse[row] = lse;
  }
  if (!grad) return;
  // d loss / d x[j] = softmax[j] * (1 + 2 z lse) - (1 - eps) [j == target] - eps / vocab. Each thread reads a
  // place before it writes it, and no other thread touches it: safe when grad is x (in place).
  const float a = 1.f + 2.f * p.z_loss * lse;
  const float b = 1.f - eps;
  const float c = eps / p.vocab;
  auto gradient = [&](int64_t j, float logit) {
    const float g = a * expf(logit - lse) - c;
    return detail::FromFloat<T>(j == target ? g - b : g);
  };
  Pack16<T>* grad16 = reinterpret_cast<Pack16<T>*>(grad);
  for (int64_t i = threadIdx.x; i < packed / kPack; i += kThreads) {
    const Pack16<T> in = x16[i];
    Pack16<T> out;
    for (int k = 0; k < kPack; ++k) out.v[k] = gradient(i * kPack + k, detail::ToFloat(in.v[k]));
    grad16[i] = out;
  }
  for (int64_t j = packed + threadIdx.x; j < p.vocab; j += kThreads) grad[j] = gradient(j, detail::ToFloat(x[j]));
}

}  // namespace

cudaError_t LaunchCrossEntropy(const CrossEntropyParams& params, cudaStream_t stream) {
  if (params.rows == 0) return cudaSuccess;
  const int64_t element = params.dtype == LossDType::kFloat32 ? 4 : 2;
  const auto aligned = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  // Every row of logits and gradient starts on a 16-byte boundary: both bases aligned, the row stride a multiple.
  const bool vectorised =
      aligned(params.logits) && (params.grad == nullptr || aligned(params.grad)) && params.ld * element % 16 == 0;
  switch (params.dtype) {
    case LossDType::kFloat32:
      CrossEntropyKernel<float><<<params.rows, kThreads, 0, stream>>>(params, vectorised);
      break;
    case LossDType::kBFloat16:
      CrossEntropyKernel<__nv_bfloat16><<<params.rows, kThreads, 0, stream>>>(params, vectorised);
      break;
    case LossDType::kFloat16:
      CrossEntropyKernel<__half><<<params.rows, kThreads, 0, stream>>>(params, vectorised);
      break;
  }
  return cudaGetLastError();
}

}  // namespace agora::kernels
