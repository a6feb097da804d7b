// A safetensors file from a stranger: the header must be refused or describe tensors that lie inside the file.
// Every accepted tensor's bytes are read (ASan reports a read outside the input).
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_support.h"
#include "models/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto file = absl::MakeConstSpan(reinterpret_cast<const std::byte*>(data), size);
  absl::StatusOr<agora::SafetensorsLayout> layout = agora::ParseSafetensorsLayout(file, "fuzz.safetensors");
  if (!layout.ok()) return 0;
  unsigned sum = 0;
  for (const agora::TensorInfo& t : layout->tensors) {
    AGORA_FUZZ_CHECK(t.begin <= t.end && layout->data_offset + t.end <= size);
    absl::StatusOr<uint64_t> bytes = agora::TensorByteSize(t.dtype, t.shape);
    AGORA_FUZZ_CHECK(bytes.ok() && *bytes == t.end - t.begin);
    for (const std::byte b : file.subspan(layout->data_offset + t.begin, t.end - t.begin)) sum += unsigned(b);
  }
  return static_cast<int>(sum & 0);
}
