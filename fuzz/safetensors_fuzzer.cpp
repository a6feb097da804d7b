// A safetensors file from a stranger: the header must be refused or describe tensors that lie inside the file.
// Every accepted tensor's bytes are read, as the loader's NaN/Inf scan reads them (ASan reports a read outside the
// input).
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_support.h"
#include "models/nonfinite_weights.h"
#include "models/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto file = absl::MakeConstSpan(reinterpret_cast<const std::byte*>(data), size);
  absl::StatusOr<agora::SafetensorsLayout> layout = agora::ParseSafetensorsLayout(file, "fuzz.safetensors");
  if (!layout.ok()) return 0;
  for (const agora::TensorInfo& t : layout->tensors) {
    AGORA_FUZZ_CHECK(t.begin <= t.end && layout->data_offset + t.end <= size);
    absl::StatusOr<uint64_t> bytes = agora::TensorByteSize(t.dtype, t.shape);
    AGORA_FUZZ_CHECK(bytes.ok() && *bytes == t.end - t.begin);
    const agora::NonfiniteValues bad =
        agora::CountNonfinite(file.subspan(layout->data_offset + t.begin, t.end - t.begin), t.dtype);
    AGORA_FUZZ_CHECK(bad.count == 0 ? bad.first == -1 : bad.first >= 0 && bad.first < int64_t(*bytes));
  }
  return 0;
}
