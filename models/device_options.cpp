#include "models/device_options.h"

#include <ATen/Context.h>

#include "absl/strings/str_cat.h"

namespace agora {

absl::StatusOr<ModelOptions> ResolveModelOptions(const std::string& device, const std::string& dtype) {
  ModelOptions options;
  const bool has_cuda = at::hasCUDA();
  if (device == "auto") {
    options.device = has_cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  } else if (device == "cpu") {
    options.device = at::kCPU;
  } else if (device.rfind("cuda", 0) == 0) {
    if (!has_cuda) return absl::FailedPreconditionError(absl::StrCat("device ", device, ": no CUDA GPU is available"));
    options.device = at::Device(device);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("device '", device, "': expected auto, cpu or cuda[:N]"));
  }
  if (dtype == "auto") {
    options.dtype = options.device.is_cuda() ? at::kBFloat16 : at::kFloat;
  } else if (dtype == "float32") {
    options.dtype = at::kFloat;
  } else if (dtype == "bfloat16") {
    options.dtype = at::kBFloat16;
  } else if (dtype == "float16") {
    options.dtype = at::kHalf;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("dtype '", dtype, "': expected auto, float32, bfloat16 or float16"));
  }
  return options;
}

}  // namespace agora
