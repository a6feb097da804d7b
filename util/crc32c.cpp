#include "util/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace agora {
namespace {

// One byte at a time through a 256-entry table: the portable path (and the reference for the instruction one).
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

// Both paths work on the register value (pre-inverted), the standard's initial value and final xor stay outside.
uint32_t UpdatePortable(uint32_t crc, absl::Span<const std::byte> data) {
  for (std::byte b : data) crc = kTable[(crc ^ static_cast<uint8_t>(b)) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
// The crc32 instruction computes this very CRC (reflected, 0x82F63B78) on 8 bytes per instruction.
__attribute__((target("sse4.2"))) uint32_t UpdateInstruction(uint32_t crc, absl::Span<const std::byte> data) {
  const std::byte* p = data.data();
  size_t n = data.size();
  uint64_t wide = crc;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);  // unaligned, little-endian as the CRC consumes bytes
    wide = _mm_crc32_u64(wide, word);
  }
  uint32_t narrow = static_cast<uint32_t>(wide);
  for (; n > 0; ++p, --n) narrow = _mm_crc32_u8(narrow, static_cast<uint8_t>(*p));
  return narrow;
}

bool HasInstruction() {
  static const bool has = [] {
    __builtin_cpu_init();  // needed when the first call comes from a static initialiser
    return __builtin_cpu_supports("sse4.2") != 0;
  }();
  return has;
}
#endif

}  // namespace

uint32_t Crc32cExtendPortable(uint32_t crc, absl::Span<const std::byte> data) {
  return UpdatePortable(crc ^ 0xFFFFFFFFu, data) ^ 0xFFFFFFFFu;
}

uint32_t Crc32cExtend(uint32_t crc, absl::Span<const std::byte> data) {
#if defined(__x86_64__)
  if (HasInstruction()) return UpdateInstruction(crc ^ 0xFFFFFFFFu, data) ^ 0xFFFFFFFFu;
#endif
  return Crc32cExtendPortable(crc, data);
}

uint32_t Crc32c(absl::Span<const std::byte> data) { return Crc32cExtend(0, data); }

uint32_t Crc32c(std::string_view data) {
  return Crc32c(absl::MakeConstSpan(reinterpret_cast<const std::byte*>(data.data()), data.size()));
}

}  // namespace agora
