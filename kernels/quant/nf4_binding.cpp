// nf4_binding.h: argument checks, then the structs of quant_kernels.h filled from an Nf4Weight's tensors, or the ATen
// path for tensors off the GPU.
#include "kernels/quant/nf4_binding.h"

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/DeviceGuard.h>
#include <ATen/cuda/CUDAContext.h>

#include "absl/strings/str_cat.h"
#include "kernels/quant/quant_checks.h"
#include "kernels/quant/quant_kernels.h"
#include "util/status_macros.h"

namespace agora::quant {
namespace {

namespace kn = agora::kernels;

// Only called on a dtype CheckFloatDType accepted.
kn::QuantDType KernelDType(at::ScalarType dtype) {
  switch (dtype) {
    case at::kBFloat16: return kn::QuantDType::kBFloat16;
    case at::kHalf: return kn::QuantDType::kFloat16;
    default: return kn::QuantDType::kFloat32;
  }
}

// The kernels load packed bytes 16 (dequantise) or 4 (GEMV) at a time and x 16 at a time: a tensor that is a view
// starting elsewhere in a buffer (one loaded checkpoint blob) is copied to an aligned one first.
bool Aligned16(const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

kn::Nf4View View(const Nf4Weight& w, const at::Tensor& packed) {
  return {packed.data_ptr<uint8_t>(), w.absmax_codes.data_ptr<uint8_t>(), w.absmax2.data_ptr<float>(), w.offset,
          w.numel()};
}

absl::Status CheckLaunch(cudaError_t error, const char* kernel, const std::string& name) {
  if (error == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(kernel, " of ", name, ": CUDA launch failed: ", cudaGetErrorString(error)));
}

}  // namespace

absl::StatusOr<at::Tensor> Nf4Dequantize(const Nf4Weight& w, at::ScalarType out_dtype, const std::string& name) {
  if (!w.packed.defined() || !w.packed.is_cuda()) return DequantizeNf4(w, out_dtype, name);
  AGORA_RETURN_IF_ERROR(CheckNf4Weight(w, name));
  AGORA_RETURN_IF_ERROR(CheckFloatDType(out_dtype, "NF4 dequantisation", name));
  const at::DeviceGuard guard(w.packed.device());
  const at::Tensor packed = Aligned16(w.packed) ? w.packed : w.packed.clone();
  at::Tensor out = at::empty(w.shape, packed.options().dtype(out_dtype));
  const kn::Nf4DequantizeParams params{View(w, packed), out.data_ptr(), KernelDType(out_dtype)};
  AGORA_RETURN_IF_ERROR(
      CheckLaunch(kn::LaunchNf4Dequantize(params, at::cuda::getCurrentCUDAStream()), "NF4 dequantisation", name));
  return out;
}

absl::StatusOr<at::Tensor> Nf4Gemv(const at::Tensor& x, const Nf4Weight& w, const std::string& name) {
  if (!w.packed.defined() || !w.packed.is_cuda()) return LinearNf4(x, w, name);
  AGORA_RETURN_IF_ERROR(CheckNf4Weight(w, name));
  AGORA_RETURN_IF_ERROR(CheckLinearInput(x, w.shape, w.packed.device(), name));
  const int64_t out_features = w.shape[0];
  const int64_t in_features = w.shape[1];
  const int64_t rows = x.numel() / in_features;
  if (rows > kn::kNf4GemvMaxRows || in_features % 8 != 0) {
    AGORA_ASSIGN_OR_RETURN(const at::Tensor weight, Nf4Dequantize(w, x.scalar_type(), name));
    return at::matmul(x, weight.t());
  }
  const at::DeviceGuard guard(w.packed.device());
  const at::Tensor packed = Aligned16(w.packed) ? w.packed : w.packed.clone();
  at::Tensor x_rows = x.contiguous();
  if (!Aligned16(x_rows)) x_rows = x_rows.clone();
  std::vector<int64_t> y_shape = x.sizes().vec();
  y_shape.back() = out_features;
  at::Tensor y = at::empty(y_shape, x.options());
  const kn::Nf4GemvParams params{View(w, packed), out_features, in_features, x_rows.data_ptr(), y.data_ptr(), rows,
                                 KernelDType(x.scalar_type())};
  AGORA_RETURN_IF_ERROR(CheckLaunch(kn::LaunchNf4Gemv(params, at::cuda::getCurrentCUDAStream()), "NF4 GEMV", name));
  return y;
}

}  // namespace agora::quant
