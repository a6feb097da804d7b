// Agora's flash attention for torch tensors: the thin binding that checks tensors, packs FlashAttentionParams and
// launches the CUDA kernels (flash_attention_kernel.cuh), and the autograd op the model's attention entry point
// (models/attention.h) calls on CUDA.
//
// Tensors are [B, H, S, D] in shape with any strides whose last dimension is contiguous (the model's q/k/v are
// transposed views of [B, S, H, D] memory and are read in place). Self-attention only: S is the same for q and k.
#pragma once

#include <ATen/core/Tensor.h>

namespace agora::kernels {

// Whether the kernels cover these tensors: CUDA, bf16 or fp16 (all three alike), head dim 64 or 128, same
// sequence length. The entry point falls back to torch SDPA otherwise.
bool FlashAttentionSupports(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// Packed samples as the kernels read them: offsets checked on the host and uploaded as int32 (from pinned memory,
// without a host sync), and the longest sample, which sizes the grid. Prepare them once per batch and pass them to
// every layer's call: preparing per call costs a host<->device copy per layer and per pass.
struct PackedSamples {
  at::Tensor device_offsets;  // [count + 1] int32 on the attention device; undefined: one sample per batch row
  int64_t count = 1;
  int64_t max_len = 0;  // the longest sample; 0 without offsets (the sequence length then)
};

// cu_seqlens: undefined (one sample per row), or [num_samples + 1] int32/int64 offsets from 0 to `seqlen`, on any
// device (offsets on a GPU cost one sync here to check them). Errors name what is wrong with them.
PackedSamples PreparePackedSamples(const at::Tensor& cu_seqlens, int64_t seqlen, const at::Device& device);

// Differentiable: softmax(scale * q k^T, causal and/or within the packed samples) v. q: [B, Hq, S, D];
// k, v: [B, Hkv, S, D] with Hq a multiple of Hkv (K/V heads are read per group, never repeated). The samples
// apply to every batch row; B x samples must stay within CUDA's 65535 grid blocks.
// Returns [B, Hq, S, D] (a transposed view of [B, S, Hq, D] memory).
at::Tensor FlashAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const PackedSamples& samples,
                          bool causal, double scale);
// The same with raw offsets, prepared for this call only (tests, benchmarks, one-off calls).
at::Tensor FlashAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& cu_seqlens,
                          bool causal, double scale);

// The two passes with caller-allocated outputs (tests fill them with NaN first). out: like q; lse: [B, Hq, S]
// float32 contiguous. Errors (TORCH_CHECK) name the tensor and what was expected.
void FlashAttentionForward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& cu_seqlens,
                           bool causal, double scale, const at::Tensor& out, const at::Tensor& lse);
// dq like q, dk like k, dv like v.
void FlashAttentionBackward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& out,
                            const at::Tensor& lse, const at::Tensor& dout, const at::Tensor& cu_seqlens, bool causal,
                            double scale, const at::Tensor& dq, const at::Tensor& dk, const at::Tensor& dv);

}  // namespace agora::kernels
