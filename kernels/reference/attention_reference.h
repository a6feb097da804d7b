// Attention computed the textbook way in float64: softmax(q k^T * scale + mask) v, with grouped-query heads
// expanded explicitly. The one independent reference every attention backend (SDPA, Agora's flash kernels and their
// CPU lab path) is checked against; slow and memory-hungry on purpose. Differentiable: with float64 inputs that
// require grad, autograd gives the reference gradients.
#pragma once

#include <ATen/core/Tensor.h>

namespace agora::reference {

// q: [B, Hq, S_q, D]; k, v: [B, Hkv, S_k, D]; allowed: [B, 1, S_q, S_k] bool (true = may attend).
// Returns [B, Hq, S_q, D] in float64; `lse`, when given, receives the rows' log-sum-exp of the masked scores,
// [B, Hq, S_q] float64 (not differentiable).
at::Tensor MathAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& allowed,
                         double scale, at::Tensor* lse = nullptr);

}  // namespace agora::reference
