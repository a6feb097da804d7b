// Named torch tensors in and out of safetensors files: the glue between LibTorch dtypes and the safetensors
// reader/writer, used for model weights and for training state (optimizer moments, master weights).
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "models/safetensors.h"

namespace agora {

std::optional<at::ScalarType> TorchDType(DType d);
absl::StatusOr<DType> SafetensorsDType(at::ScalarType t);

// A tensor view over mapped bytes. The mapping is only guaranteed byte-aligned, so misaligned data is first
// copied into an aligned buffer (never the case for files laid out by the reference writer).
at::Tensor TensorOverBytes(absl::Span<const std::byte> bytes, const std::vector<int64_t>& shape, at::ScalarType dtype);

// Writes every tensor (any device; fp32/bf16/fp16) atomically into one safetensors file.
absl::Status SaveTensors(const std::filesystem::path& path, const std::map<std::string, at::Tensor>& tensors);
// Every tensor of a safetensors file, copied into CPU tensors. A tensor holding NaN or Inf is refused, naming it.
absl::StatusOr<std::map<std::string, at::Tensor>> LoadTensors(const std::filesystem::path& path);

}  // namespace agora
