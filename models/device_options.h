// Device and dtype choices ("auto", "cuda:1", "bfloat16" ...), shared by every command and recipe that runs a model.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "models/llama.h"

namespace agora {

// "auto" picks CUDA when a GPU is present; dtype "auto" is bfloat16 on CUDA and float32 on the CPU.
absl::StatusOr<ModelOptions> ResolveModelOptions(const std::string& device, const std::string& dtype);

}  // namespace agora
