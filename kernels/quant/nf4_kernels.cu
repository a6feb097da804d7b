// Launchers of the NF4 kernels (nf4_kernels.cuh): grid sizes and the element type. quant_kernels.h says what each
// computes; NOTES.md why they are shaped so.
#include <cstdint>

#include "kernels/quant/nf4_kernels.cuh"
#include "kernels/quant/quant_kernels.h"

namespace agora::kernels {
namespace {

// Enough blocks to fill every SM several times over; more would only reload the code books.
int DequantizeGrid(int64_t chunks) {
  int device = 0, sms = 1;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  const int64_t needed = (chunks + nf4::kDequantizeThreads - 1) / nf4::kDequantizeThreads;
  return static_cast<int>(needed < int64_t{sms} * 8 ? needed : int64_t{sms} * 8);
}

}  // namespace

cudaError_t LaunchNf4Dequantize(const Nf4DequantizeParams& params, cudaStream_t stream) {
  const int64_t chunks = params.weight.numel / nf4::kChunkElements;
  if (chunks == 0) return cudaSuccess;
  const int grid = DequantizeGrid(chunks);
  constexpr int kThreads = nf4::kDequantizeThreads;
  switch (params.out_dtype) {
    case QuantDType::kFloat32:
      nf4::Nf4DequantizeKernel<float><<<grid, kThreads, 0, stream>>>(params);
      break;
    case QuantDType::kBFloat16:
      nf4::Nf4DequantizeKernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(params);
      break;
    case QuantDType::kFloat16:
      nf4::Nf4DequantizeKernel<__half><<<grid, kThreads, 0, stream>>>(params);
      break;
  }
  return cudaGetLastError();
}

cudaError_t LaunchNf4Gemv(const Nf4GemvParams& params, cudaStream_t stream) {
  if (params.out_features == 0 || params.rows == 0) return cudaSuccess;
  const int64_t grid = (params.out_features + nf4::kGemvWarps - 1) / nf4::kGemvWarps;
  constexpr int kThreads = nf4::kGemvThreads;
  switch (params.x_dtype) {
    case QuantDType::kFloat32:
      nf4::Nf4GemvKernel<float><<<grid, kThreads, 0, stream>>>(params);
      break;
    case QuantDType::kBFloat16:
      nf4::Nf4GemvKernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(params);
      break;
    case QuantDType::kFloat16:
      nf4::Nf4GemvKernel<__half><<<grid, kThreads, 0, stream>>>(params);
      break;
  }
  return cudaGetLastError();
}

}  // namespace agora::kernels
