#include "models/nonfinite_weights.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace agora {
namespace {

// An IEEE value is NaN or infinite exactly when its exponent field is all ones: test (bits & mask) == mask over
// elements of `Bits` (read with memcpy: mapped tensors are only byte-aligned). The loop vectorises.
template <typename Bits>
NonfiniteValues Scan(absl::Span<const std::byte> data, Bits exponent_mask) {
  NonfiniteValues found;
  const int64_t n = static_cast<int64_t>(data.size() / sizeof(Bits));
  for (int64_t i = 0; i < n; ++i) {
    Bits bits;
    std::memcpy(&bits, data.data() + i * sizeof(Bits), sizeof(Bits));
    if ((bits & exponent_mask) == exponent_mask) {
      if (found.count++ == 0) found.first = i;
    }
  }
  return found;
}

}  // namespace

NonfiniteValues CountNonfinite(absl::Span<const std::byte> data, DType dtype) {
  switch (dtype) {
    case DType::kF16: return Scan<uint16_t>(data, 0x7C00);
    case DType::kBF16: return Scan<uint16_t>(data, 0x7F80);
    case DType::kF32: return Scan<uint32_t>(data, 0x7F800000u);
    case DType::kF64: return Scan<uint64_t>(data, 0x7FF0000000000000ull);
    default: return {};
  }
}

std::string DescribeNonfinite(const std::filesystem::path& file, const std::string& tensor, const NonfiniteValues& found) {
  return absl::StrCat(file.string(), ": tensor '", tensor, "' holds ", found.count, " NaN or infinite value",
                      found.count == 1 ? "" : "s", " (the first at flat index ", found.first, ")");
}

}  // namespace agora
