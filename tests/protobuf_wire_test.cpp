// The protobuf wire reader and writers (util/protobuf_wire.h) against the byte strings of protobuf's encoding
// guide (https://protobuf.dev/programming-guides/encoding/): field 1 = 150 is 08 96 01, field 2 = "testing" is
// 12 07 74 65 73 74 69 6e 67, an int32 of -2 is the ten-byte varint fe ff ff ff ff ff ff ff ff 01.
#include "util/protobuf_wire.h"

#include <bit>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace agora::protowire {
namespace {

using ::testing::HasSubstr;

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (int b : bytes) out.push_back(static_cast<char>(b));
  return out;
}

TEST(ProtobufWire, WritersGiveTheEncodingGuidesBytes) {
  std::string out;
  PutKey(out, 1, WireType::kVarint);
  PutVarint(out, 150);
  EXPECT_EQ(out, Bytes({0x08, 0x96, 0x01}));

  out.clear();
  PutBytesField(out, 2, "testing");
  EXPECT_EQ(out, Bytes({0x12, 0x07, 0x74, 0x65, 0x73, 0x74, 0x69, 0x6e, 0x67}));

  out.clear();
  PutVarint(out, static_cast<uint64_t>(int64_t{-2}));
  EXPECT_EQ(out, Bytes({0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}));

  out.clear();
  PutKey(out, 3, WireType::kFixed32);
  PutFixed32(out, std::bit_cast<uint32_t>(1.0f));  // 0x3f800000, little-endian
  PutKey(out, 4, WireType::kFixed64);
  PutFixed64(out, 0x0102030405060708ULL);
  EXPECT_EQ(out, Bytes({0x1d, 0x00, 0x00, 0x80, 0x3f, 0x21, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01}));
}

TEST(ProtobufWire, ReaderReadsBackWhatTheWritersWrote) {
  std::string message;
  PutKey(message, 1, WireType::kVarint);
  PutVarint(message, static_cast<uint64_t>(int64_t{-2}));
  PutBytesField(message, 2, "testing");
  PutKey(message, 3, WireType::kFixed32);
  PutFixed32(message, std::bit_cast<uint32_t>(0.25f));
  PutKey(message, 15, WireType::kVarint);
  PutVarint(message, 1);

  MessageReader reader(message);
  absl::StatusOr<Field> f = reader.Next();
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->number, 1u);
  EXPECT_EQ(*AsInt32(*f), -2);
  f = reader.Next();
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->number, 2u);
  EXPECT_EQ(*AsBytes(*f), "testing");
  f = reader.Next();
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->number, 3u);
  EXPECT_EQ(*AsFloat(*f), 0.25f);
  f = reader.Next();
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->number, 15u);
  EXPECT_TRUE(*AsBool(*f));
  EXPECT_TRUE(reader.AtEnd());
  // A typed view refuses a payload of another wire type.
  EXPECT_FALSE(AsBytes(Field{.number = 1, .wire_type = WireType::kVarint, .integer = 3}).ok());
}

TEST(ProtobufWire, TruncatedInputIsAnErrorNotACrash) {
  std::string message;
  PutBytesField(message, 2, "testing");
  for (size_t cut = 1; cut < message.size(); ++cut) {
    MessageReader reader(std::string_view(message).substr(0, cut));
    absl::StatusOr<Field> f = reader.Next();
    ASSERT_FALSE(f.ok()) << "cut at " << cut;
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  }
  const std::string unfinished = Bytes({0x08, 0x96});  // the varint's continuation bit runs past the end
  MessageReader varint(unfinished);  // (a view: the bytes must outlive it, as ASan pointed out)
  absl::StatusOr<Field> f = varint.Next();
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("byte"));
}

}  // namespace
}  // namespace agora::protowire
