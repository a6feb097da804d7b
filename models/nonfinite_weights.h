// NaN and infinite values in stored weights, without torch: how many a tensor's bytes hold, and what loading does
// about them (recipe key model.on_nonfinite_weights). A released Llama checkpoint never holds one; a file that does
// was damaged or produced by a diverged run, and every output computed from it would be NaN.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "absl/types/span.h"
#include "models/safetensors.h"

namespace agora {

enum class NonfiniteWeights {
  kRefuse,  // the load fails, naming the file, the tensor, how many values and the first one's index
  kWarn,    // the load goes on; each such tensor is reported to the caller (the trainer logs it)
};

inline std::string NonfiniteWeightsName(NonfiniteWeights policy) {
  return policy == NonfiniteWeights::kRefuse ? "refuse" : "warn";
}

struct NonfiniteValues {
  int64_t count = 0;
  int64_t first = -1;  // flat index of the first one; -1 when count is 0
};

// The NaN and +-Inf values among `data`, little-endian elements of `dtype`. Floats are read by their exponent bits
// (all ones), so the scan needs no alignment and no conversion; integer and sub-byte dtypes hold none.
NonfiniteValues CountNonfinite(absl::Span<const std::byte> data, DType dtype);

// "<file>: tensor '<name>' holds N NaN or infinite values (the first at flat index i)".
std::string DescribeNonfinite(const std::filesystem::path& file, const std::string& tensor, const NonfiniteValues& found);

}  // namespace agora
