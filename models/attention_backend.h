// The choice of attention implementation, apart from the attention code so a recipe can name it without torch.
#pragma once

#include <string>

namespace agora {

// Which implementation computes attention (recipe key model.attention).
enum class AttentionBackend {
  // Agora's flash kernels (kernels/attention/flash_attention.h) where they apply: CUDA, bf16/fp16, head dim 64 or
  // 128, self-attention without a cache or padding mask (training and prefill, packed samples included). Every
  // other case (the CPU, fp32, other head dims, decoding with a KV cache, padded batches) runs torch SDPA.
  kAgora,
  kSdpa,  // torch SDPA everywhere
};

inline std::string AttentionBackendName(AttentionBackend backend) {
  return backend == AttentionBackend::kAgora ? "agora" : "sdpa";
}

}  // namespace agora
