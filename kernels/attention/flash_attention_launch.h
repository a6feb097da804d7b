// The CUDA side's entry points, callable from plain C++ (the torch binding): one explicit instantiation per
// (element type, head dim) lives in a generated flash_attention_<type>_hdim<D>.cu (see CMakeLists.txt).
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/attention/flash_attention_params.h"

namespace agora::kernels {

enum class Element { kBFloat16, kFloat16 };

// Writes o and lse. Returns the launch's error (cudaSuccess when it was queued).
template <Element E, int HeadDim>
cudaError_t LaunchFlashForward(const FlashAttentionParams& params, cudaStream_t stream);

// Writes delta, dq_accum (must be zeroed by the caller), dq, dk, dv.
template <Element E, int HeadDim>
cudaError_t LaunchFlashBackward(const FlashAttentionParams& params, cudaStream_t stream);

}  // namespace agora::kernels
