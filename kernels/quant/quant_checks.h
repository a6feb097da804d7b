// Argument checks the ATen path (nf4_cpu.cpp) and the CUDA binding (nf4_binding.cpp) share; each error names the
// weight.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "util/status_macros.h"

namespace agora::quant {

inline std::string ShapeString(at::IntArrayRef shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

// `what` names the operation ("NF4 quantisation"), `name` the weight.
inline absl::Status CheckFloatDType(at::ScalarType dtype, const std::string& what, const std::string& name) {
  if (dtype == at::kFloat || dtype == at::kBFloat16 || dtype == at::kHalf) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " of ", name, ": dtype must be float32, bfloat16 or float16, got ", c10::toString(dtype)));
}

// x [..., in] against a weight [out, in] on x's device.
inline absl::Status CheckLinearInput(const at::Tensor& x, at::IntArrayRef weight_shape, const at::Device& weight_device,
                                     const std::string& name) {
  AGORA_RETURN_IF_ERROR(CheckFloatDType(x.scalar_type(), "NF4 linear", name));
  if (weight_shape.size() != 2 || x.dim() == 0 || x.size(-1) != weight_shape[1]) {
    return absl::InvalidArgumentError(absl::StrCat("NF4 linear of ", name,
                                                   ": needs a weight [out, in] and x [..., in], got weight ",
                                                   ShapeString(weight_shape), " and x ", ShapeString(x.sizes())));
  }
  if (x.device() != weight_device) {
    return absl::InvalidArgumentError(absl::StrCat("NF4 linear of ", name, ": x is on ", x.device().str(),
                                                   ", the weight on ", weight_device.str()));
  }
  return absl::OkStatus();
}

}  // namespace agora::quant
