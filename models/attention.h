// The one attention entry point of the Llama layers. Every backend (torch SDPA, Agora's CUDA flash kernels in
// kernels/attention) sits behind Attention(); callers describe the mask, they never build it.
#pragma once

#include <ATen/core/Tensor.h>

#include "kernels/attention/flash_attention.h"
#include "models/attention_backend.h"

namespace agora {

struct AttentionMask {
  // Query i (absolute position query_offset + i in the key sequence) sees keys at positions <= its own.
  bool causal = true;
  int64_t query_offset = 0;
  // Optional [B, S_k] bool: false marks padding keys nobody may attend to (left-padded batched prompts).
  at::Tensor key_valid;
  // Optional [num_samples + 1] int32/int64 cumulative offsets of samples packed into one row (B == 1):
  // attention never crosses a sample boundary.
  at::Tensor cu_seqlens;
  // cu_seqlens as Agora's CUDA kernels read them, made once per forward by PrepareForKernels so that no layer
  // copies or synchronises; unset, each call prepares its own.
  kernels::PackedSamples kernel_samples;
};

// Readies `mask` for the layers of one forward on `device` over `seq_len` positions: with packed samples on a CUDA
// device, checks and uploads their offsets once (kernel_samples). Elsewhere it changes nothing.
void PrepareForKernels(AttentionMask& mask, int64_t seq_len, const at::Device& device);

// q: [B, Hq, S_q, D]; k, v: [B, Hkv, S_k, D] with Hq a multiple of Hkv (grouped-query attention: K/V heads are
// shared by Hq/Hkv query heads, never materialised repeated). Returns [B, Hq, S_q, D] in q's dtype.
at::Tensor Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionMask& mask,
                     double scale, AttentionBackend backend = AttentionBackend::kAgora);

// The boolean mask [B, 1, S_q, S_k] (true = may attend) that `mask` describes; exposed for tests and for
// backends that take an explicit mask.
at::Tensor MaterializeMask(const AttentionMask& mask, int64_t batch, int64_t s_q, int64_t s_k,
                           const at::Device& device);

}  // namespace agora
