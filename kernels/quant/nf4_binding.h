// NF4 on the GPU: the kernels of quant_kernels.h behind tensor-level functions. CUDA tensors go to the kernels,
// others to nf4.h's ATen path, so callers need not ask where a weight lives.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "kernels/quant/nf4.h"

namespace agora::quant {

// The weight in its shape as out_dtype (float32, bfloat16 or float16): bit for bit DequantizeNf4 on any device.
absl::StatusOr<at::Tensor> Nf4Dequantize(const Nf4Weight& weight, at::ScalarType out_dtype,
                                         const std::string& name = "weight");

// y = x W^T for a weight [out, in] and x [..., in] (float32, bfloat16 or float16; y in x's dtype). On CUDA, up to
// kNf4GemvMaxRows rows of x with in % 8 == 0 (every Llama projection) go through the fused dequantise + GEMV kernel,
// float32 accumulation; more rows (a GEMM's worth: the weight's one read is shared by enough of them) or another
// row length go through Nf4Dequantize into a scratch weight and torch's matmul. Elsewhere LinearNf4.
absl::StatusOr<at::Tensor> Nf4Gemv(const at::Tensor& x, const Nf4Weight& weight, const std::string& name = "weight");

}  // namespace agora::quant
