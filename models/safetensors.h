// The safetensors format (huggingface/safetensors), without torch: a zero-copy mmap reader that validates the
// header as strictly as the reference implementation, and an atomic writer laying files out as it does.
//
// File layout: an 8-byte little-endian header size N, N bytes of JSON (right-padded with spaces), then the
// data buffer. The JSON maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} with offsets
// relative to the data buffer, plus an optional "__metadata__" string-to-string map.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace agora {

// Every dtype of safetensors 0.8 (safetensors/src/tensor.rs), declared in the reference's order: its writer
// sorts tensors by this order, descending, so the enum's values are the layout rank.
enum class DType : uint8_t {
  kBool,
  kF4,
  kF6E2M3,
  kF6E3M2,
  kU8,
  kI8,
  kF8E5M2,
  kF8E4M3,
  kF8E8M0,
  kF8E4M3Fnuz,
  kF8E5M2Fnuz,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kC64,
  kF64,
  kI64,
  kU64,
};

// The header's spelling ("F32", "F8_E4M3", ...).
std::string_view DTypeName(DType dtype);
// The inverse of DTypeName; nullopt for a string the format does not define.
std::optional<DType> ParseDType(std::string_view name);
// Bits per element: 4 and 6 for the sub-byte float types, BOOL is a byte.
int DTypeBits(DType dtype);

// Bytes a tensor of `dtype` and `shape` occupies: numel * bits / 8. Fails on a negative dimension, on
// overflow, and when the bits do not fill whole bytes (e.g. three F4 values). Messages do not name a file
// or tensor; callers prefix them.
absl::StatusOr<uint64_t> TensorByteSize(DType dtype, absl::Span<const int64_t> shape);

struct TensorInfo {
  std::string name;
  DType dtype{};
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // [begin, end) in the data buffer, which starts right after the header
  uint64_t end = 0;
};

// What a safetensors file's header says, validated against the file's size: tensors in data offset order, the
// "__metadata__" map, and where the data buffer starts.
struct SafetensorsLayout {
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;
};

// Parses and validates the whole layout of a safetensors file held in `file` (SafetensorsFile::Open's checks);
// `origin` names it in messages. Everything after the header is only checked for size.
absl::StatusOr<SafetensorsLayout> ParseSafetensorsLayout(absl::Span<const std::byte> file,
                                                         const std::filesystem::path& origin);

class SafetensorsFile {
 public:
  // Maps `path` read-only and validates it completely, so that every accessor below is safe afterwards.
  // Malformed files give InvalidArgumentError, truncated ones DataLossError; messages name the file and,
  // where one is at fault, the tensor.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::filesystem::path& path);

  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  // Tensors in file (data offset) order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // nullptr when there is no tensor `name`.
  const TensorInfo* Find(std::string_view name) const;
  // The tensor's bytes inside the mapping; valid while this object lives. `info` must come from this file.
  absl::Span<const std::byte> Data(const TensorInfo& info) const;
  // The header's "__metadata__" (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  SafetensorsFile(std::filesystem::path path, const std::byte* mapping, size_t mapping_size);

  std::filesystem::path path_;
  const std::byte* mapping_;
  size_t mapping_size_;
  const std::byte* data_ = nullptr;  // the data buffer, inside the mapping
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

struct TensorToWrite {
  std::string name;
  DType dtype{};
  std::vector<int64_t> shape;
  absl::Span<const std::byte> data;  // exactly TensorByteSize(dtype, shape) bytes, little-endian, row-major
};

// Writes a safetensors file atomically (see WriteFileAtomically), laid out as the reference writer does:
// tensors sorted by dtype (descending layout rank) then name, the header padded with spaces to a multiple of
// 8 bytes. `metadata` is stored as "__metadata__", with "format": "pt" added unless it sets a format. Names
// must be unique and each tensor's data must match its dtype and shape; otherwise nothing is written.
absl::Status WriteSafetensors(const std::filesystem::path& path, absl::Span<const TensorToWrite> tensors,
                              const std::map<std::string, std::string>& metadata);

}  // namespace agora
