#include "models/tensor_file.h"

#include <cstdint>
#include <cstring>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "models/nonfinite_weights.h"
#include "util/status_macros.h"

namespace agora {

std::optional<at::ScalarType> TorchDType(DType d) {
  switch (d) {
    case DType::kF32: return at::kFloat;
    case DType::kF16: return at::kHalf;
    case DType::kBF16: return at::kBFloat16;
    default: return std::nullopt;
  }
}

absl::StatusOr<DType> SafetensorsDType(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return DType::kF32;
    case at::kHalf: return DType::kF16;
    case at::kBFloat16: return DType::kBF16;
    default: return absl::InvalidArgumentError(absl::StrCat("cannot save tensors of dtype ", c10::toString(t)));
  }
}

at::Tensor TensorOverBytes(absl::Span<const std::byte> bytes, const std::vector<int64_t>& shape, at::ScalarType dtype) {
  const void* ptr = bytes.data();
  if (reinterpret_cast<uintptr_t>(ptr) % c10::elementSize(dtype) == 0)
    return at::from_blob(const_cast<void*>(ptr), shape, at::TensorOptions().dtype(dtype));
  at::Tensor aligned = at::empty(shape, at::TensorOptions().dtype(dtype));
  std::memcpy(aligned.data_ptr(), ptr, bytes.size());
  return aligned;
}

absl::Status SaveTensors(const std::filesystem::path& path, const std::map<std::string, at::Tensor>& tensors) {
  std::vector<at::Tensor> host;  // keeps the CPU copies alive while the file is written
  host.reserve(tensors.size());
  std::vector<TensorToWrite> entries;
  for (const auto& [name, tensor] : tensors) {
    AGORA_ASSIGN_OR_RETURN(DType dtype, SafetensorsDType(tensor.scalar_type()));
    host.push_back(tensor.detach().to(at::kCPU).contiguous());
    const at::Tensor& t = host.back();
    entries.push_back({name, dtype, t.sizes().vec(),
                       absl::Span<const std::byte>(static_cast<const std::byte*>(t.data_ptr()), t.nbytes())});
  }
  return WriteSafetensors(path, entries, {});
}

absl::StatusOr<std::map<std::string, at::Tensor>> LoadTensors(const std::filesystem::path& path) {
  AGORA_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(path));
  std::map<std::string, at::Tensor> out;
  for (const TensorInfo& info : file->tensors()) {
    std::optional<at::ScalarType> dtype = TorchDType(info.dtype);
    if (!dtype)
      return absl::InvalidArgumentError(absl::StrCat(path.string(), ": tensor ", info.name,
                                                     " has a dtype Agora does not load"));
    const absl::Span<const std::byte> bytes = file->Data(info);
    // Adapters and optimizer state: Agora never saves NaN or Inf there (a non-finite step is skipped or stops the
    // run), and one such value would spread to every weight it touches, so there is no policy to choose.
    if (const NonfiniteValues bad = CountNonfinite(bytes, info.dtype); bad.count > 0)
      return absl::DataLossError(absl::StrCat(DescribeNonfinite(path, info.name, bad), ": refusing to load it"));
    out[info.name] = TensorOverBytes(bytes, info.shape, *dtype).clone();
  }
  return out;
}

}  // namespace agora
