// The protobuf wire format without the protobuf library (whose runtime we do not want next to libtorch's): a
// minimal, bounds-checked reader that walks a serialized message field by field (sentencepiece's tokenizer.model),
// and the few writers TensorBoard's event files need. Every read is checked against the end of the buffer, so
// truncated or corrupt input yields an InvalidArgumentError, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace agora::protowire {

enum class WireType : uint8_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5,
};

// One field of a message. `integer` holds the payload of varint and fixed-width fields; `bytes` that of
// length-delimited fields (strings, bytes, sub-messages) and the body of a group.
struct Field {
  uint32_t number = 0;
  WireType wire_type = WireType::kVarint;
  uint64_t integer = 0;
  std::string_view bytes;
};

// Reads the fields of one serialized message in order. Error messages give the byte offset within `message`.
class MessageReader {
 public:
  explicit MessageReader(std::string_view message) : data_(message) {}

  bool AtEnd() const { return pos_ == data_.size(); }
  // The next field; groups (a deprecated encoding) are read whole, so callers can skip them like any field.
  absl::StatusOr<Field> Next();

 private:
  struct Key {
    uint32_t number;
    WireType wire_type;
  };

  absl::StatusOr<uint64_t> ReadVarint();
  absl::StatusOr<uint64_t> ReadFixed(size_t width);
  absl::StatusOr<std::string_view> ReadLengthDelimited();
  absl::StatusOr<Key> ReadKey();
  // Reads the payload of a non-group field into `field`.
  absl::Status ReadPayload(Field& field);
  // Consumes everything up to and including the end-group tag that closes the group `number`; returns the
  // offset where that tag starts, i.e. the end of the group's body.
  absl::StatusOr<size_t> SkipGroup(uint32_t number);
  absl::Status Malformed(absl::string_view what, size_t at) const;

  std::string_view data_;
  size_t pos_ = 0;
};

// Typed views of a field's payload; they fail when the wire type does not fit the declared field type.
absl::StatusOr<std::string_view> AsBytes(const Field& field);
absl::StatusOr<float> AsFloat(const Field& field);
absl::StatusOr<bool> AsBool(const Field& field);
// int32 and enum fields: negative values are sign-extended 10-byte varints that truncate back to 32 bits.
absl::StatusOr<int32_t> AsInt32(const Field& field);

// Writers, appending to `out`. A negative int64 is written as its 10-byte two's-complement varint, as protobuf does.
void PutVarint(std::string& out, uint64_t value);
void PutKey(std::string& out, uint32_t number, WireType wire_type);
void PutFixed32(std::string& out, uint32_t value);  // little-endian, as fixed32/float payloads are
void PutFixed64(std::string& out, uint64_t value);  // little-endian, as fixed64/double payloads are
// A length-delimited field: key, length, bytes (strings, bytes and sub-messages).
void PutBytesField(std::string& out, uint32_t number, std::string_view bytes);

}  // namespace agora::protowire
