// What kernels/quant's CPU and CUDA tests share: random weights shaped like a trained model's (normal, a per-row
// scale spread over two decades, 0.2 % outliers up to 30x, never an exact zero) and the float64 reference of y = x W^T.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "kernels/quant/nf4.h"
#include "kernels/quant/quant_checks.h"

namespace agora::quant::testing {

inline at::Tensor RandomWeight(const std::vector<int64_t>& shape, at::ScalarType dtype, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<int64_t> row_shape(shape.size(), 1);
  row_shape[0] = shape[0];
  const at::Tensor scale = at::exp(at::empty({shape[0]}).uniform_(-2.3, 2.3, gen)) * 0.02;
  at::Tensor w = at::randn(shape, gen) * scale.view(row_shape);
  const at::Tensor outliers = at::rand(shape, gen) < 2e-3;
  w = at::where(outliers, w * at::empty(shape).uniform_(5, 30, gen), w).to(dtype);
  return w.masked_fill(w == 0, 1e-3);
}

// x [rows, in] @ dequantised(weight)^T in float64, on the CPU.
inline at::Tensor LinearFloat64(const at::Tensor& x, const Nf4Weight& weight) {
  const at::Tensor w = DequantizeNf4(weight, at::kFloat).value().cpu().to(at::kDouble);
  return at::matmul(x.cpu().to(at::kDouble), w.t());
}

}  // namespace agora::quant::testing
