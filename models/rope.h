// Rotary position embeddings exactly as transformers' Llama applies them: frequencies from rope_theta (and the
// rope_scaling rule), cos/sin of cat(freqs, freqs) in fp32, rotate_half on the two halves of each head.
#pragma once

#include <utility>

#include <ATen/core/Tensor.h>

#include "models/config.h"

namespace agora {

// Inverse frequencies [head_dim / 2], fp32, CPU, with llama3/linear scaling applied.
at::Tensor RopeInverseFrequencies(const LlamaConfig& config);

// cos and sin [B, S, head_dim] in `dtype` for integer positions [B, S].
std::pair<at::Tensor, at::Tensor> RopeCosSin(const at::Tensor& inv_freq, const at::Tensor& position_ids,
                                             at::ScalarType dtype);

// x: [B, H, S, D]; cos/sin: [B, S, D]. Returns x * cos + rotate_half(x) * sin.
at::Tensor ApplyRope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace agora
