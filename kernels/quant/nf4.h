// QLoRA's weight storage: NF4 block quantisation with double-quantised scales, bit for bit as bitsandbytes 0.50.2
// stores a weight (quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=True)), and LLM.int8()'s
// row-wise int8 (int8_vectorwise_quant). The functions here are ATen ops, so they run on any device; the CUDA kernels
// that dequantise and multiply on the GPU are behind nf4_binding.h. NOTES.md has the algorithm, the layout and the
// byte counts.
//
// NF4, for a weight of n elements (n a multiple of 64; flattened row-major, as bitsandbytes does):
//   absmax[b]   = max |w| over block b of 64 elements                         (float32, n / 64 of them)
//   code[i]     = the index of the kNf4Code entry nearest to w[i] * (1 / absmax[b]): bucketize over the float32
//                 midpoints of neighbouring entries, a value on a midpoint taking the lower entry
//   packed[j]   = code[2j] << 4 | code[2j + 1]
// then double quantisation of the absmax values (what makes QLoRA's scales cost 0.127 instead of 0.5 bit/param):
//   offset          = mean(absmax)                                               (float32, torch's mean)
//   absmax2[c]      = max |absmax - offset| over block c of 256 absmax values    (float32)
//   absmax_codes[b] = the kDynamicMap entry nearest to (absmax[b] - offset) * (1 / absmax2[c]), by the same rule
//                     (the last, partial block of 256 divides by absmax2 instead, as bitsandbytes does)
// and dequantisation, all in float32, rounded once to the output dtype:
//   w'[i] = kNf4Code[code[i]] * (kDynamicMap[absmax_codes[b]] * absmax2[b / 256] + offset)
//
// The 8-bit step follows bitsandbytes' PyTorch backend (and its CUDA kernel); its native CPU library looks the
// nearest code up in a 65536-bin table instead and differs by one step on about 0.5 % of the absmax codes. The
// oracle records both (NOTES.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/quant/code_books.h"

namespace agora::quant {

// One quantised weight; every tensor on the same device, contiguous.
struct Nf4Weight {
  at::Tensor packed;        // uint8 [numel / 2]: element 2j in the high nibble of byte j, 2j + 1 in the low
  at::Tensor absmax_codes;  // uint8 [numel / 64]
  at::Tensor absmax2;       // float32 [ceil(numel / 64 / 256)]
  float offset = 0.f;
  std::vector<int64_t> shape;  // the weight's shape

  int64_t numel() const;
  // Bytes held: packed + absmax_codes + absmax2 + offset, about numel * (0.5 + 1/64 + 4/16384) (0.516 per parameter).
  int64_t bytes() const;
};

// Sizes, dtypes, devices and layout of a weight built elsewhere (a loaded checkpoint); an error names `name`.
absl::Status CheckNf4Weight(const Nf4Weight& weight, const std::string& name);

// weight: float32, bfloat16 or float16, finite, with a multiple of 64 elements (every Llama projection is); the
// result lies on the weight's device. Errors name `name` and the shape.
absl::StatusOr<Nf4Weight> QuantizeNf4(const at::Tensor& weight, const std::string& name = "weight");

// The weight back in `shape`, as out_dtype (float32, bfloat16 or float16), in ATen ops on the weight's device.
// nf4_binding.h's Nf4Dequantize runs the CUDA kernel instead on a GPU.
absl::StatusOr<at::Tensor> DequantizeNf4(const Nf4Weight& weight, at::ScalarType out_dtype,
                                         const std::string& name = "weight");

// y = x W^T for a 2-D weight [out, in] and x [..., in] (float32, bfloat16 or float16): float32 product of x and the
// dequantised weight, rounded once to x's dtype. The ATen path of nf4_binding.h's Nf4Gemv.
absl::StatusOr<at::Tensor> LinearNf4(const at::Tensor& x, const Nf4Weight& weight, const std::string& name = "weight");

// LLM.int8()'s row-wise absmax quantisation of a 2-D weight [rows, cols] (bitsandbytes' int8_vectorwise_quant
// without outlier columns): codes = round_half_even(w * (127 / absmax_row)) with 127 / absmax_row computed as
// (1 / absmax_row) * 127 in float32, as torch's `127.0 / t` does. A row of zeros gets codes 0.
struct Int8Weight {
  at::Tensor codes;   // int8 [rows, cols]
  at::Tensor absmax;  // float32 [rows]

  int64_t bytes() const;  // about 1 + 4 / cols per parameter
};
absl::StatusOr<Int8Weight> QuantizeInt8Rows(const at::Tensor& weight, const std::string& name = "weight");
// codes * absmax_row * (1 / 127) in float32 (bitsandbytes' int8_vectorwise_dequant), rounded once to out_dtype.
absl::StatusOr<at::Tensor> DequantizeInt8Rows(const Int8Weight& weight, at::ScalarType out_dtype,
                                              const std::string& name = "weight");

}  // namespace agora::quant
