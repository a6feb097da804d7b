#include "models/rope.h"

#include <cmath>

#include <ATen/ATen.h>

namespace agora {

at::Tensor RopeInverseFrequencies(const LlamaConfig& config) {
  const int64_t dim = config.head_dim;
  // transformers: 1 / base ** (arange(0, dim, 2, int64).float() / dim), all in fp32.
  at::Tensor exponents = at::arange(0, dim, 2, at::kLong).to(at::kFloat).div(static_cast<double>(dim));
  at::Tensor inv_freq = at::pow(config.rope_theta, exponents).reciprocal();
  const RopeScaling& s = config.rope_scaling;
  switch (s.type) {
    case RopeType::kDefault:
      return inv_freq;
    case RopeType::kLinear:
      return inv_freq / s.factor;
    case RopeType::kLlama3: {
      // Long wavelengths are slowed by `factor`, short ones kept, and the band between interpolated smoothly
      // (transformers' _compute_llama3_parameters). Scalar/tensor divisions are written as reciprocal-then-multiply
      // because that is how Python evaluates `scalar / tensor`, so the fp32 results match bit for bit.
      const double old_ctx = static_cast<double>(s.original_max_position_embeddings);
      const double low_freq_wavelen = old_ctx / s.low_freq_factor;
      const double high_freq_wavelen = old_ctx / s.high_freq_factor;
      at::Tensor wavelen = inv_freq.reciprocal().mul(2 * M_PI);
      at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
      at::Tensor smooth = (wavelen.reciprocal().mul(old_ctx) - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      at::Tensor smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
      at::Tensor is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen);
      return at::where(is_medium, smoothed, scaled);
    }
  }
  return inv_freq;
}

std::pair<at::Tensor, at::Tensor> RopeCosSin(const at::Tensor& inv_freq, const at::Tensor& position_ids,
                                             at::ScalarType dtype) {
  at::Tensor inv = inv_freq.to(position_ids.device(), at::kFloat);
  // Outer product position x frequency in fp32, as transformers computes it regardless of the model dtype.
  at::Tensor freqs = position_ids.to(at::kFloat).unsqueeze(-1) * inv.view({1, 1, -1});
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor ApplyRope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor rotated = at::cat({x.slice(-1, half).neg(), x.slice(-1, 0, half)}, -1);
  return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1);
}

}  // namespace agora
