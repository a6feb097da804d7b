#include "util/protobuf_wire.h"

#include <bit>
#include <vector>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace agora::protowire {
namespace {

constexpr int kMaxVarintBytes = 10;
constexpr uint32_t kMaxFieldNumber = (1u << 29) - 1;

const char* WireTypeName(WireType type) {
  switch (type) {
    case WireType::kVarint:
      return "varint";
    case WireType::kFixed64:
      return "64-bit";
    case WireType::kLengthDelimited:
      return "length-delimited";
    case WireType::kStartGroup:
      return "start-group";
    case WireType::kEndGroup:
      return "end-group";
    case WireType::kFixed32:
      return "32-bit";
  }
  return "invalid";
}

absl::Status WrongWireType(const Field& field, WireType expected) {
  return absl::InvalidArgumentError(absl::StrCat("field ", field.number, " has wire type ",
                                                 WireTypeName(field.wire_type), ", expected ",
                                                 WireTypeName(expected)));
}

// Fixed-width payloads are little-endian whatever the host's byte order.
void PutLittleEndian(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

}  // namespace

absl::Status MessageReader::Malformed(absl::string_view what, size_t at) const {
  return absl::InvalidArgumentError(absl::StrCat(what, " at byte ", at, " of a ", data_.size(), "-byte message"));
}

absl::StatusOr<uint64_t> MessageReader::ReadVarint() {
  const size_t start = pos_;
  uint64_t value = 0;
  for (int i = 0; i < kMaxVarintBytes; ++i) {
    if (pos_ == data_.size()) return Malformed("truncated varint", start);
    const auto byte = static_cast<uint8_t>(data_[pos_++]);
    // The tenth byte carries only bit 63; anything more does not fit in 64 bits.
    if (i == kMaxVarintBytes - 1 && byte > 1) return Malformed("varint overflows 64 bits", start);
    value |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
    if (byte < 0x80) return value;
  }
  return Malformed("varint longer than 10 bytes", start);
}

absl::StatusOr<uint64_t> MessageReader::ReadFixed(size_t width) {
  if (data_.size() - pos_ < width) {
    return Malformed(absl::StrCat("truncated ", width * 8, "-bit value"), pos_);
  }
  uint64_t value = 0;
  for (size_t i = 0; i < width; ++i) {  // little-endian on the wire, whatever the host
    value |= static_cast<uint64_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
  }
  pos_ += width;
  return value;
}

absl::StatusOr<std::string_view> MessageReader::ReadLengthDelimited() {
  const size_t start = pos_;
  AGORA_ASSIGN_OR_RETURN(const uint64_t length, ReadVarint());
  const size_t left = data_.size() - pos_;
  if (length > left) {
    return Malformed(absl::StrCat("length ", length, " runs past the end (", left, " bytes left)"), start);
  }
  const std::string_view bytes = data_.substr(pos_, length);
  pos_ += length;
  return bytes;
}

absl::StatusOr<MessageReader::Key> MessageReader::ReadKey() {
  const size_t start = pos_;
  AGORA_ASSIGN_OR_RETURN(const uint64_t key, ReadVarint());
  const uint64_t number = key >> 3;
  const auto wire_type = static_cast<uint8_t>(key & 7);
  if (number == 0 || number > kMaxFieldNumber) {
    return Malformed(absl::StrCat("invalid field number ", number), start);
  }
  if (wire_type > static_cast<uint8_t>(WireType::kFixed32)) {
    return Malformed(absl::StrCat("invalid wire type ", wire_type), start);
  }
  return Key{static_cast<uint32_t>(number), static_cast<WireType>(wire_type)};
}

absl::Status MessageReader::ReadPayload(Field& field) {
  switch (field.wire_type) {
    case WireType::kVarint: {
      AGORA_ASSIGN_OR_RETURN(field.integer, ReadVarint());
      return absl::OkStatus();
    }
    case WireType::kFixed64: {
      AGORA_ASSIGN_OR_RETURN(field.integer, ReadFixed(8));
      return absl::OkStatus();
    }
    case WireType::kFixed32: {
      AGORA_ASSIGN_OR_RETURN(field.integer, ReadFixed(4));
      return absl::OkStatus();
    }
    case WireType::kLengthDelimited: {
      AGORA_ASSIGN_OR_RETURN(field.bytes, ReadLengthDelimited());
      return absl::OkStatus();
    }
    case WireType::kStartGroup:
    case WireType::kEndGroup:
      break;
  }
  return absl::InternalError("ReadPayload called on a group tag");
}

absl::StatusOr<size_t> MessageReader::SkipGroup(uint32_t number) {
  // An explicit stack rather than recursion: nesting depth is attacker-controlled.
  std::vector<uint32_t> open_groups = {number};
  for (;;) {
    const size_t start = pos_;
    if (AtEnd()) return Malformed(absl::StrCat("group ", open_groups.back(), " is never closed"), start);
    AGORA_ASSIGN_OR_RETURN(const Key key, ReadKey());
    if (key.wire_type == WireType::kStartGroup) {
      open_groups.push_back(key.number);
    } else if (key.wire_type == WireType::kEndGroup) {
      if (key.number != open_groups.back()) {
        return Malformed(absl::StrCat("end of group ", key.number, " inside group ", open_groups.back()), start);
      }
      open_groups.pop_back();
      if (open_groups.empty()) return start;
    } else {
      Field ignored{.number = key.number, .wire_type = key.wire_type, .integer = 0, .bytes = {}};
      AGORA_RETURN_IF_ERROR(ReadPayload(ignored));
    }
  }
}

absl::StatusOr<Field> MessageReader::Next() {
  const size_t start = pos_;
  AGORA_ASSIGN_OR_RETURN(const Key key, ReadKey());
  Field field{.number = key.number, .wire_type = key.wire_type, .integer = 0, .bytes = {}};
  switch (key.wire_type) {
    case WireType::kEndGroup:
      return Malformed(absl::StrCat("end of group ", key.number, " without a start"), start);
    case WireType::kStartGroup: {
      const size_t body_start = pos_;
      AGORA_ASSIGN_OR_RETURN(const size_t body_end, SkipGroup(key.number));
      field.bytes = data_.substr(body_start, body_end - body_start);
      return field;
    }
    default:
      AGORA_RETURN_IF_ERROR(ReadPayload(field));
      return field;
  }
}

absl::StatusOr<std::string_view> AsBytes(const Field& field) {
  if (field.wire_type != WireType::kLengthDelimited) return WrongWireType(field, WireType::kLengthDelimited);
  return field.bytes;
}

absl::StatusOr<float> AsFloat(const Field& field) {
  if (field.wire_type != WireType::kFixed32) return WrongWireType(field, WireType::kFixed32);
  return std::bit_cast<float>(static_cast<uint32_t>(field.integer));
}

absl::StatusOr<bool> AsBool(const Field& field) {
  if (field.wire_type != WireType::kVarint) return WrongWireType(field, WireType::kVarint);
  return field.integer != 0;
}

absl::StatusOr<int32_t> AsInt32(const Field& field) {
  if (field.wire_type != WireType::kVarint) return WrongWireType(field, WireType::kVarint);
  return static_cast<int32_t>(static_cast<uint32_t>(field.integer));
}

void PutVarint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void PutKey(std::string& out, uint32_t number, WireType wire_type) {
  PutVarint(out, uint64_t{number} << 3 | static_cast<uint64_t>(wire_type));
}

void PutFixed32(std::string& out, uint32_t value) { PutLittleEndian(out, value, 4); }
void PutFixed64(std::string& out, uint64_t value) { PutLittleEndian(out, value, 8); }

void PutBytesField(std::string& out, uint32_t number, std::string_view bytes) {
  PutKey(out, number, WireType::kLengthDelimited);
  PutVarint(out, bytes.size());
  out.append(bytes);
}

}  // namespace agora::protowire
