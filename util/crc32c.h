// CRC-32C (Castagnoli): the checksum TensorBoard's TFRecord framing uses (its reader rejects a record whose CRC is
// wrong, so this must be bit-exact with the standard: Crc32c("123456789") == 0xe3069283), and the one training
// checkpoints record per file. x86-64 has an instruction for exactly this polynomial (SSE4.2 crc32), used when
// the CPU has it: gigabytes per second, so checksumming a 7B checkpoint costs seconds, not minutes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/types/span.h"

namespace agora {

// The reflected CRC with polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF.
uint32_t Crc32c(absl::Span<const std::byte> data);
uint32_t Crc32c(std::string_view data);
// Streaming: Crc32cExtend(Crc32c(a), b) == Crc32c(a + b), and Crc32c(x) == Crc32cExtend(0, x).
uint32_t Crc32cExtend(uint32_t crc, absl::Span<const std::byte> data);
// The table-driven computation alone (the reference the instruction path is tested against).
uint32_t Crc32cExtendPortable(uint32_t crc, absl::Span<const std::byte> data);

}  // namespace agora
