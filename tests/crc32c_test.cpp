// CRC-32C (util/crc32c.h), the checksum of TensorBoard's record framing.
#include <gtest/gtest.h>

#include <string>

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

}  // namespace
}  // namespace agora
