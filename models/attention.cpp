#include "models/attention.h"

#include <vector>

#include <ATen/ATen.h>

#include "kernels/attention/flash_attention.h"

namespace agora {

at::Tensor MaterializeMask(const AttentionMask& mask, int64_t batch, int64_t s_q, int64_t s_k,
                           const at::Device& device) {
  auto long_opts = at::TensorOptions().dtype(at::kLong).device(device);
  at::Tensor q_pos = at::arange(s_q, long_opts).add_(mask.query_offset).view({s_q, 1});
  at::Tensor k_pos = at::arange(s_k, long_opts).view({1, s_k});
  at::Tensor allowed = mask.causal ? k_pos.le(q_pos) : at::ones({s_q, s_k}, long_opts.dtype(at::kBool));
  allowed = allowed.view({1, 1, s_q, s_k}).expand({batch, 1, s_q, s_k});
  if (mask.cu_seqlens.defined()) {
    TORCH_CHECK(batch == 1, "Attention: cu_seqlens (packed samples) needs batch 1, got ", batch);
    // sample index of every position: the number of sample starts at or before it, minus one.
    at::Tensor starts = mask.cu_seqlens.to(device, at::kLong).slice(0, 1, -1);
    at::Tensor q_sample = at::bucketize(q_pos.view({s_q}), starts, /*out_int32=*/false, /*right=*/true);
    at::Tensor k_sample = at::bucketize(k_pos.view({s_k}), starts, false, true);
    allowed = allowed & q_sample.view({1, 1, s_q, 1}).eq(k_sample.view({1, 1, 1, s_k}));
  }
  if (mask.key_valid.defined()) {
    TORCH_CHECK(mask.key_valid.dim() == 2 && mask.key_valid.size(0) == batch && mask.key_valid.size(1) >= s_k,
                "Attention: key_valid must be [", batch, ", >=", s_k, "], got ", mask.key_valid.sizes());
    at::Tensor valid = mask.key_valid.slice(1, 0, s_k).to(device, at::kBool).view({batch, 1, 1, s_k});
    // A padding query would otherwise see no key at all (softmax of nothing = NaN): let it see itself. Valid
    // queries always see their own key, so this changes nothing they compute.
    at::Tensor self = k_pos.eq(q_pos).view({1, 1, s_q, s_k});
    allowed = allowed & (valid | self);
  }
  return allowed;
}

void PrepareForKernels(AttentionMask& mask, int64_t seq_len, const at::Device& device) {
  if (mask.cu_seqlens.defined() && device.is_cuda() && !mask.kernel_samples.device_offsets.defined())
    mask.kernel_samples = kernels::PreparePackedSamples(mask.cu_seqlens, seq_len, device);
}

at::Tensor Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionMask& mask,
                     double scale, AttentionBackend backend) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "Attention: q, k, v must be [B, H, S, D]");
  TORCH_CHECK(q.size(1) % k.size(1) == 0, "Attention: query heads (", q.size(1),
              ") must be a multiple of key/value heads (", k.size(1), ")");
  const int64_t batch = q.size(0), s_q = q.size(2), s_k = k.size(2);
  // Agora's flash kernels: self-attention over whole samples (causal or full, packed or not).
  if (backend == AttentionBackend::kAgora && mask.query_offset == 0 && !mask.key_valid.defined() &&
      (!mask.cu_seqlens.defined() || batch == 1) && kernels::FlashAttentionSupports(q, k, v)) {
    const bool prepared = mask.kernel_samples.device_offsets.defined() || !mask.cu_seqlens.defined();
    return kernels::FlashAttention(
        q, k, v, prepared ? mask.kernel_samples : kernels::PreparePackedSamples(mask.cu_seqlens, s_q, q.device()),
        mask.causal, scale);
  }
  const bool gqa = q.size(1) != k.size(1);
  // The plain causal square case needs no mask tensor: let SDPA pick its fastest kernel.
  const bool plain_causal = mask.causal && mask.query_offset == 0 && s_q == s_k && !mask.key_valid.defined() &&
                            !mask.cu_seqlens.defined();
  if (plain_causal || (!mask.causal && !mask.key_valid.defined() && !mask.cu_seqlens.defined())) {
    return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/mask.causal,
                                            scale, gqa);
  }
  // Packed samples in training (one row, no cache): attend within each sample with the plain causal kernel,
  // sample by sample, instead of materialising a [T, T] block-diagonal mask (T = all tokens of the batch, which
  // is quadratic in the batch rather than in the sample). On CUDA, Agora's varlen kernel above does this in one launch.
  if (mask.causal && mask.cu_seqlens.defined() && mask.query_offset == 0 && s_q == s_k &&
      !mask.key_valid.defined()) {
    TORCH_CHECK(batch == 1, "Attention: cu_seqlens (packed samples) needs batch 1, got ", batch);
    const at::Tensor bounds = mask.cu_seqlens.to(at::kCPU, at::kLong).contiguous();
    const int64_t* cu = bounds.data_ptr<int64_t>();
    TORCH_CHECK(bounds.numel() >= 2 && cu[0] == 0 && cu[bounds.numel() - 1] == s_q,
                "Attention: cu_seqlens must run from 0 to the sequence length ", s_q, ", got ", bounds);
    std::vector<at::Tensor> outs;
    outs.reserve(bounds.numel() - 1);
    for (int64_t i = 0; i + 1 < bounds.numel(); ++i) {
      TORCH_CHECK(cu[i + 1] > cu[i], "Attention: cu_seqlens must increase, got ", bounds);
      outs.push_back(at::scaled_dot_product_attention(q.slice(2, cu[i], cu[i + 1]), k.slice(2, cu[i], cu[i + 1]),
                                                      v.slice(2, cu[i], cu[i + 1]), {}, 0.0, /*is_causal=*/true,
                                                      scale, gqa));
    }
    return at::cat(outs, 2);
  }
  at::Tensor allowed = MaterializeMask(mask, batch, s_q, s_k, q.device());
  return at::scaled_dot_product_attention(q, k, v, allowed, 0.0, /*is_causal=*/false, scale, gqa);
}

}  // namespace agora
