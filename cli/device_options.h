// --device and --dtype, shared by every command that runs a model.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "models/llama.h"

namespace agora::cli {

// "auto" picks CUDA when a GPU is present; dtype "auto" is bfloat16 on CUDA and float32 on the CPU.
absl::StatusOr<ModelOptions> ResolveModelOptions(const std::string& device, const std::string& dtype);

}  // namespace agora::cli
