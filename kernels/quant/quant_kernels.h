// Launchers of the NF4 kernels (nf4_kernels.cuh, launched by nf4_kernels.cu). Plain parameter structs and raw device pointers:
// no torch here, so nvcc never parses ATen; nf4_binding.cpp fills the structs from an Nf4Weight's tensors. Layout,
// byte counts and the roofline: NOTES.md beside this file.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace agora::kernels {

enum class QuantDType { kFloat32, kBFloat16, kFloat16 };

// A weight of `numel` elements (a multiple of 64) quantised as bitsandbytes' NF4 with double quantisation, flat in
// row-major order (nf4.h, Nf4Weight):
//   element i = kNf4Code[nibble i] * absmax[i / 64]
//   nibble i  = the high half of packed[i / 2] for even i, the low half for odd i
//   absmax[b] = kDynamicMap[absmax_codes[b]] * absmax2[b / 256] + offset      (float32, no fused multiply-add)
struct Nf4View {
  const uint8_t* packed;        // [numel / 2]
  const uint8_t* absmax_codes;  // [numel / 64]
  const float* absmax2;         // [ceil(numel / 64 / 256)]
  float offset;
  int64_t numel;
};

// out[i] = element i rounded once (to nearest even) to out_dtype: bit for bit the ATen path (nf4_cpu.cpp) and
// bitsandbytes' dequantize_4bit. `packed` and `out` must be 16-byte aligned (the binding allocates `out` and copies
// a misaligned `packed`).
struct Nf4DequantizeParams {
  Nf4View weight;
  void* out;  // [numel] of out_dtype
  QuantDType out_dtype;
};
cudaError_t LaunchNf4Dequantize(const Nf4DequantizeParams& params, cudaStream_t stream);

// The fused dequantise + GEMV of decoding: y[r, o] = sum_k W[o, k] * x[r, k] for a weight W [out_features,
// in_features] and a few rows of x, with float32 accumulation; x and y share x_dtype. The weight is read once for
// all rows and never written out dequantised. Needs rows <= kNf4GemvMaxRows and in_features % 8 == 0 (every
// thread's four packed bytes then lie in one 64-block and one row), x 16-byte aligned.
inline constexpr int kNf4GemvMaxRows = 8;
struct Nf4GemvParams {
  Nf4View weight;
  int64_t out_features;
  int64_t in_features;
  const void* x;  // [rows, in_features], contiguous
  void* y;        // [rows, out_features], contiguous
  int64_t rows;
  QuantDType x_dtype;
};
cudaError_t LaunchNf4Gemv(const Nf4GemvParams& params, cudaStream_t stream);

}  // namespace agora::kernels
