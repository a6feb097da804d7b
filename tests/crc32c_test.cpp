// CRC-32C (util/crc32c.h), the checksum of TensorBoard's record framing.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "util/crc32c.h"

namespace agora {
namespace {

// The standard check value, the iSCSI vectors of RFC 3720 B.4, and two more from a table-free bitwise
// reference (python, polynomial 0x82F63B78).
TEST(Crc32cTest, KnownValues) {
  EXPECT_EQ(Crc32c("123456789"), 0xe3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8a9136aau);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62a8ab43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(Crc32c(ascending), 0x46dd794eu);
  EXPECT_EQ(Crc32c(descending), 0x113fdb5cu);
  EXPECT_EQ(Crc32c("a"), 0xc1d04330u);
  EXPECT_EQ(Crc32c("The quick brown fox jumps over the lazy dog"), 0x22620404u);
}

TEST(Crc32cTest, SpanAndStringAgree) {
  const std::string text = "brain.Event:2";
  EXPECT_EQ(Crc32c(absl::MakeConstSpan(reinterpret_cast<const std::byte*>(text.data()), text.size())),
            Crc32c(text));
}

// The instruction path (taken on x86-64 CPUs with SSE4.2) against the table, at every length and alignment
// around its 8-byte steps, on random bytes; and streaming in pieces equals the whole.
TEST(Crc32cTest, InstructionPathAndStreamingMatchTheTable) {
  std::mt19937 rng(7);
  std::vector<std::byte> bytes(4096 + 17);
  for (std::byte& b : bytes) b = static_cast<std::byte>(rng());
  const absl::Span<const std::byte> all(bytes);
  for (size_t offset = 0; offset < 9; ++offset) {
    for (size_t length : {0, 1, 7, 8, 9, 15, 16, 63, 1000, 4096}) {
      const auto piece = all.subspan(offset, length);
      ASSERT_EQ(Crc32c(piece), Crc32cExtendPortable(0, piece)) << "offset " << offset << " length " << length;
    }
  }
  uint32_t streamed = 0;
  for (size_t at = 0; at < all.size(); at += 1000) streamed = Crc32cExtend(streamed, all.subspan(at, 1000));
  EXPECT_EQ(streamed, Crc32c(all));
  EXPECT_EQ(streamed, Crc32cExtendPortable(0, all));
  EXPECT_NE(streamed, 0u);
}

}  // namespace
}  // namespace agora
