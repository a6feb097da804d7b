// Cross-entropy over given logits, forward and backward in one kernel: one block per row sweeps the row once for
// its online log-sum-exp (and the target and uniform terms), writes the row's loss, then sweeps it again writing
// the gradient, possibly over the logits themselves. Memory: one read for the forward and one read + one write
// for the gradient, with no [rows, vocab] buffer besides the logits.
#include "kernels/loss/loss_kernels.h"
#include "kernels/loss/row_stats.cuh"

namespace agora::kernels {
namespace {

using detail::kThreads;
using detail::RowStats;

template <typename T>
__global__ void __launch_bounds__(kThreads) CrossEntropyKernel(CrossEntropyParams p) {
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
  // Read before BlockReduce's barrier, so no thread can have overwritten it yet (in place).
  const float target_logit = detail::ToFloat(x[target]);
  RowStats s = detail::EmptyStats();
  for (int64_t j = threadIdx.x; j < p.vocab; j += kThreads) detail::Add(s, detail::ToFloat(x[j]));
  s = detail::BlockReduce(s);
  const float lse = s.max + logf(s.sum_exp);
  const float eps = p.label_smoothing;
  if (threadIdx.x == 0) {
    p.loss[row] = lse - (1.f - eps) * target_logit - eps * (s.sum / p.vocab) + p.z_loss * lse * lse;
    p.logprob[row] = target_logit - lse;
    p.lse[row] = lse;
  }
  if (!grad) return;
  // d loss / d x[j] = softmax[j] * (1 + 2 z lse) - (1 - eps) [j == target] - eps / vocab
  const float a = 1.f + 2.f * p.z_loss * lse;
  const float b = 1.f - eps;
  const float c = eps / p.vocab;
  for (int64_t j = threadIdx.x; j < p.vocab; j += kThreads) {
    float g = a * expf(detail::ToFloat(x[j]) - lse) - c;
    if (j == target) g -= b;
    grad[j] = detail::FromFloat<T>(g);
  }
}

}  // namespace

cudaError_t LaunchCrossEntropy(const CrossEntropyParams& params, cudaStream_t stream) {
  if (params.rows == 0) return cudaSuccess;
  switch (params.dtype) {
    case LossDType::kFloat32: CrossEntropyKernel<float><<<params.rows, kThreads, 0, stream>>>(params); break;
    case LossDType::kBFloat16: CrossEntropyKernel<__nv_bfloat16><<<params.rows, kThreads, 0, stream>>>(params); break;
    case LossDType::kFloat16: CrossEntropyKernel<__half><<<params.rows, kThreads, 0, stream>>>(params); break;
  }
  return cudaGetLastError();
}

}  // namespace agora::kernels
