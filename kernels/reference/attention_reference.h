// Attention computed the textbook way in float64: softmax(q k^T * scale + mask) v, with grouped-query heads
// expanded explicitly. The independent reference every attention backend (SDPA now, Agora's kernels later) is
// checked against; slow and memory-hungry on purpose.
#pragma once

#include <ATen/core/Tensor.h>

namespace agora::reference {

// q: [B, Hq, S_q, D]; k, v: [B, Hkv, S_k, D]; allowed: [B, 1, S_q, S_k] bool (true = may attend).
// Returns [B, Hq, S_q, D] in float64.
at::Tensor MathAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& allowed,
                         double scale);

}  // namespace agora::reference
