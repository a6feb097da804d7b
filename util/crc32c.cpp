#include "util/crc32c.h"

#include <array>

namespace agora {
namespace {

// One byte at a time through a 256-entry table: the event files it checksums are a few bytes per scalar, so
// the hardware crc32 instruction or slicing-by-8 would buy nothing measurable.
constexpr std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    table[i] = crc;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kTable = MakeTable();

}  // namespace

uint32_t Crc32c(absl::Span<const std::byte> data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (std::byte b : data) crc = kTable[(crc ^ static_cast<uint8_t>(b)) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

uint32_t Crc32c(std::string_view data) {
  return Crc32c(absl::MakeConstSpan(reinterpret_cast<const std::byte*>(data.data()), data.size()));
}

}  // namespace agora
