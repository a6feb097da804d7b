// CRC-32C (Castagnoli), the checksum TFRecord framing uses; TensorBoard's reader rejects a record whose CRC
// is wrong, so this must be bit-exact with the standard (check value: Crc32c("123456789") == 0xe3069283).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/types/span.h"

namespace agora {

// The reflected CRC with polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF.
uint32_t Crc32c(absl::Span<const std::byte> data);
uint32_t Crc32c(std::string_view data);

}  // namespace agora
