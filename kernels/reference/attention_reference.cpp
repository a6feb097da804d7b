#include "kernels/reference/attention_reference.h"

#include <limits>

#include <ATen/ATen.h>

namespace agora::reference {

at::Tensor MathAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& allowed,
                         double scale, at::Tensor* lse) {
  const int64_t group = q.size(1) / k.size(1);
  at::Tensor q64 = q.to(at::kDouble);
  at::Tensor k64 = k.to(at::kDouble).repeat_interleave(group, /*dim=*/1);
  at::Tensor v64 = v.to(at::kDouble).repeat_interleave(group, 1);
  at::Tensor scores = at::matmul(q64, k64.transpose(-2, -1)) * scale;
  scores = scores.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
  if (lse != nullptr) *lse = scores.detach().logsumexp(-1);
  return at::matmul(scores.softmax(-1), v64);
}

}  // namespace agora::reference
