#include "models/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <tuple>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "util/atomic_file.h"
#include "util/status_macros.h"

namespace agora {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// The reference rejects larger headers to bound the memory a hostile file can make a reader allocate.
constexpr uint64_t kMaxHeaderSize = 100'000'000;
constexpr size_t kSizePrefixBytes = 8;
constexpr char kMetadataKey[] = "__metadata__";

struct DTypeDescription {
  DType dtype;
  const char* name;  // a C string: this absl build's StrCat does not take std::string_view
  int bits;
};

constexpr DTypeDescription kDTypes[] = {
    {DType::kBool, "BOOL", 8},
    {DType::kF4, "F4", 4},
    {DType::kF6E2M3, "F6_E2M3", 6},
    {DType::kF6E3M2, "F6_E3M2", 6},
    {DType::kU8, "U8", 8},
    {DType::kI8, "I8", 8},
    {DType::kF8E5M2, "F8_E5M2", 8},
    {DType::kF8E4M3, "F8_E4M3", 8},
    {DType::kF8E8M0, "F8_E8M0", 8},
    {DType::kF8E4M3Fnuz, "F8_E4M3FNUZ", 8},
    {DType::kF8E5M2Fnuz, "F8_E5M2FNUZ", 8},
    {DType::kI16, "I16", 16},
    {DType::kU16, "U16", 16},
    {DType::kF16, "F16", 16},
    {DType::kBF16, "BF16", 16},
    {DType::kI32, "I32", 32},
    {DType::kU32, "U32", 32},
    {DType::kF32, "F32", 32},
    {DType::kC64, "C64", 64},
    {DType::kF64, "F64", 64},
    {DType::kI64, "I64", 64},
    {DType::kU64, "U64", 64},
};

// DTypeName and DTypeBits index kDTypes by the enum's value.
constexpr bool DTypeTableMatchesEnum() {
  for (size_t i = 0; i < std::size(kDTypes); ++i) {
    if (static_cast<size_t>(kDTypes[i].dtype) != i) return false;
  }
  return std::size(kDTypes) == static_cast<size_t>(DType::kU64) + 1;
}
static_assert(DTypeTableMatchesEnum());

const DTypeDescription& DescriptionOf(DType dtype) { return kDTypes[static_cast<size_t>(dtype)]; }

std::string FormatShape(absl::Span<const int64_t> shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

std::string FormatOffsets(const TensorInfo& info) { return absl::StrCat("[", info.begin, ", ", info.end, "]"); }

// A JSON value as it appeared, cut short so that a huge object cannot flood an error message.
std::string Quote(const Json& value) {
  constexpr size_t kMaxChars = 60;
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > kMaxChars) text = absl::StrCat(text.substr(0, kMaxChars), "...");
  return text;
}

absl::Status FileError(absl::StatusCode code, const fs::path& path, absl::string_view message) {
  return absl::Status(code, absl::StrCat(path.string(), ": ", message));
}

absl::Status TensorError(absl::StatusCode code, const fs::path& path, absl::string_view tensor,
                         absl::string_view message) {
  return absl::Status(code, absl::StrCat(path.string(), ": tensor '", tensor, "': ", message));
}

absl::Status InvalidTensor(const fs::path& path, absl::string_view tensor, absl::string_view message) {
  return TensorError(absl::StatusCode::kInvalidArgument, path, tensor, message);
}

// `err` is passed in rather than read here: building the message may allocate, which may clobber errno.
absl::Status ErrnoError(absl::string_view what, const fs::path& path, int err) {
  return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(what, " ", path.string(), ": ", std::strerror(err)));
}

uint64_t ReadLittleEndian64(const std::byte* bytes) {
  uint64_t value = 0;
  for (int i = kSizePrefixBytes - 1; i >= 0; --i) value = (value << 8) | std::to_integer<uint64_t>(bytes[i]);
  return value;
}

std::string LittleEndian64(uint64_t value) {
  std::string bytes(kSizePrefixBytes, '\0');
  for (size_t i = 0; i < kSizePrefixBytes; ++i) bytes[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return bytes;
}

// ---- Reading ----

// nlohmann keeps the last of duplicate keys without a word, which would let two header entries claim one
// tensor name; this callback remembers the first duplicate so that parsing can reject it. Each open object
// gets a key set; `top_level_key_` names the entry a nested duplicate belongs to.
class DuplicateKeyDetector {
 public:
  bool operator()(int depth, Json::parse_event_t event, Json& value) {
    switch (event) {
      case Json::parse_event_t::object_start:
        open_objects_.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        open_objects_.pop_back();
        break;
      case Json::parse_event_t::key: {
        const std::string& key = value.get_ref<const std::string&>();
        if (depth == 1) top_level_key_ = key;
        if (!open_objects_.back().insert(key).second && !duplicate_) {
          duplicate_ = depth == 1 ? absl::StrCat("duplicate tensor name '", key, "'")
                                  : absl::StrCat("entry '", top_level_key_, "' has a duplicate key '", key, "'");
        }
        break;
      }
      default:
        break;
    }
    return true;
  }

  const std::optional<std::string>& duplicate() const { return duplicate_; }

 private:
  std::vector<std::set<std::string>> open_objects_;
  std::string top_level_key_;
  std::optional<std::string> duplicate_;
};

absl::StatusOr<Json> ParseHeaderJson(const fs::path& path, std::string_view text) {
  // nlohmann's lexer takes a NUL byte for the end of input, which would accept "{}\0garbage"; JSON allows no
  // raw NUL anywhere, so finding one is already a syntax error.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return FileError(absl::StatusCode::kInvalidArgument, path,
                     absl::StrCat("header is not valid JSON: NUL byte at offset ", nul));
  }
  // parse() copies the callback it is given, so the detector is captured by reference to read it back after.
  DuplicateKeyDetector detector;
  Json header;
  try {
    header = Json::parse(text.begin(), text.end(), [&detector](int depth, Json::parse_event_t event, Json& value) {
      return detector(depth, event, value);
    });
  } catch (const Json::exception& e) {
    // parse_error for bad syntax, out_of_range for a number too large for a double. Trailing spaces (the
    // reference pads with them) are ordinary JSON whitespace and parse fine.
    return FileError(absl::StatusCode::kInvalidArgument, path, absl::StrCat("header is not valid JSON: ", e.what()));
  }
  if (detector.duplicate()) {
    return FileError(absl::StatusCode::kInvalidArgument, path, absl::StrCat("header has a ", *detector.duplicate()));
  }
  if (!header.is_object()) {
    return FileError(absl::StatusCode::kInvalidArgument, path,
                     absl::StrCat("header is a JSON ", header.type_name(), ", expected an object"));
  }
  return header;
}

// `what` names the value in messages, e.g. "shape[1]".
absl::StatusOr<uint64_t> NonNegativeInteger(const fs::path& path, absl::string_view tensor, absl::string_view what,
                                            const Json& value) {
  if (!value.is_number_unsigned()) {
    return InvalidTensor(path, tensor, absl::StrCat(what, " is ", Quote(value), ", expected a non-negative integer"));
  }
  return value.get<uint64_t>();
}

absl::StatusOr<TensorInfo> ParseTensorEntry(const fs::path& path, const std::string& name, const Json& entry) {
  if (!entry.is_object()) {
    return InvalidTensor(path, name, absl::StrCat("entry is ", Quote(entry), ", expected an object"));
  }
  // Unknown fields are ignored, as the reference does.
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(field)) return InvalidTensor(path, name, absl::StrCat("missing \"", field, "\""));
  }
  const Json* dtype = &entry.at("dtype");
  const Json* shape = &entry.at("shape");
  const Json* offsets = &entry.at("data_offsets");

  TensorInfo info;
  info.name = name;
  if (!dtype->is_string()) {
    return InvalidTensor(path, name, absl::StrCat("dtype is ", Quote(*dtype), ", expected a string"));
  }
  std::optional<DType> parsed = ParseDType(dtype->get_ref<const std::string&>());
  if (!parsed) return InvalidTensor(path, name, absl::StrCat("unsupported dtype ", Quote(*dtype)));
  info.dtype = *parsed;

  if (!shape->is_array()) {
    return InvalidTensor(path, name, absl::StrCat("shape is ", Quote(*shape), ", expected an array"));
  }
  for (size_t i = 0; i < shape->size(); ++i) {
    AGORA_ASSIGN_OR_RETURN(uint64_t dim, NonNegativeInteger(path, name, absl::StrCat("shape[", i, "]"), (*shape)[i]));
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return InvalidTensor(path, name, absl::StrCat("shape[", i, "] is ", dim, ", larger than the int64 maximum"));
    }
    info.shape.push_back(static_cast<int64_t>(dim));
  }

  if (!offsets->is_array() || offsets->size() != 2) {
    return InvalidTensor(path, name, absl::StrCat("data_offsets is ", Quote(*offsets), ", expected [begin, end]"));
  }
  AGORA_ASSIGN_OR_RETURN(info.begin, NonNegativeInteger(path, name, "data_offsets[0]", (*offsets)[0]));
  AGORA_ASSIGN_OR_RETURN(info.end, NonNegativeInteger(path, name, "data_offsets[1]", (*offsets)[1]));
  if (info.end < info.begin) {
    return InvalidTensor(path, name, absl::StrCat("data_offsets ", FormatOffsets(info), " end before they begin"));
  }
  return info;
}

absl::StatusOr<std::map<std::string, std::string>> ParseMetadata(const fs::path& path, const Json& value) {
  std::map<std::string, std::string> metadata;
  if (value.is_null()) return metadata;  // the reference reads null as "no metadata"
  if (!value.is_object()) {
    return FileError(absl::StatusCode::kInvalidArgument, path,
                     absl::StrCat("__metadata__ is ", Quote(value), ", expected an object of strings"));
  }
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      return FileError(absl::StatusCode::kInvalidArgument, path,
                       absl::StrCat("__metadata__ key '", key, "' is ", Quote(item), ", expected a string"));
    }
    metadata.emplace(key, item.get<std::string>());
  }
  return metadata;
}

// `tensors` sorted by offsets. They must tile the data buffer [0, data_size) exactly, each spanning the bytes
// its dtype and shape need.
absl::Status ValidateLayout(const fs::path& path, const std::vector<TensorInfo>& tensors, uint64_t data_size) {
  uint64_t expected_begin = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& info : tensors) {
    const std::string after = previous == nullptr ? std::string("the start of the data buffer")
                                                  : absl::StrCat("the end of tensor '", previous->name, "'");
    if (info.begin > expected_begin) {
      return InvalidTensor(path, info.name,
                           absl::StrCat("data_offsets ", FormatOffsets(info), " leave a hole: expected it to begin at ",
                                        expected_begin, ", ", after));
    }
    if (info.begin < expected_begin) {
      return InvalidTensor(path, info.name,
                           absl::StrCat("data_offsets ", FormatOffsets(info), " overlap tensor '", previous->name,
                                        "' at ", FormatOffsets(*previous)));
    }
    absl::StatusOr<uint64_t> needed = TensorByteSize(info.dtype, info.shape);
    if (!needed.ok()) return InvalidTensor(path, info.name, needed.status().message());
    if (info.end - info.begin != *needed) {
      return InvalidTensor(
          path, info.name,
          absl::StrCat("data_offsets ", FormatOffsets(info), " span ", info.end - info.begin, " bytes but dtype ",
                       DescriptionOf(info.dtype).name, " shape ", FormatShape(info.shape), " needs ", *needed));
    }
    if (info.end > data_size) {
      return TensorError(
          absl::StatusCode::kDataLoss, path, info.name,
          absl::StrCat("data_offsets ", FormatOffsets(info), " run past the end of the file, whose data ",
                       "buffer holds ", data_size, " bytes (truncated?)"));
    }
    expected_begin = info.end;
    previous = &info;
  }
  if (expected_begin != data_size) {
    return FileError(absl::StatusCode::kInvalidArgument, path,
                     absl::StrCat(data_size - expected_begin, " trailing bytes: the tensors end at byte ",
                                  expected_begin, " of the data buffer but it holds ", data_size));
  }
  return absl::OkStatus();
}

// ---- Writing ----

absl::Status ValidateTensorsToWrite(const fs::path& path, absl::Span<const TensorToWrite> tensors) {
  std::set<std::string_view> names;
  for (const TensorToWrite& tensor : tensors) {
    if (tensor.name == kMetadataKey) {
      return InvalidTensor(path, tensor.name, "the name is reserved for the header's metadata");
    }
    if (!names.insert(tensor.name).second) {
      return FileError(absl::StatusCode::kInvalidArgument, path,
                       absl::StrCat("duplicate tensor name '", tensor.name, "'"));
    }
    absl::StatusOr<uint64_t> needed = TensorByteSize(tensor.dtype, tensor.shape);
    if (!needed.ok()) return InvalidTensor(path, tensor.name, needed.status().message());
    if (tensor.data.size() != *needed) {
      return InvalidTensor(
          path, tensor.name,
          absl::StrCat("dtype ", DescriptionOf(tensor.dtype).name, " shape ", FormatShape(tensor.shape), " needs ",
                       *needed, " bytes but ", tensor.data.size(), " were given"));
    }
  }
  return absl::OkStatus();
}

// The reference writer's order: descending dtype rank (widest alignment first, so every tensor stays aligned
// to its element size), then name.
std::vector<const TensorToWrite*> LayoutOrder(absl::Span<const TensorToWrite> tensors) {
  std::vector<const TensorToWrite*> order;
  for (const TensorToWrite& tensor : tensors) order.push_back(&tensor);
  std::sort(order.begin(), order.end(), [](const TensorToWrite* a, const TensorToWrite* b) {
    if (a->dtype != b->dtype) return a->dtype > b->dtype;
    return a->name < b->name;
  });
  return order;
}

// The header JSON, padded with spaces to a multiple of 8 bytes so the data buffer starts 8-aligned.
absl::StatusOr<std::string> BuildHeader(const fs::path& path, const std::vector<const TensorToWrite*>& order,
                                        const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps insertion order: metadata first, then tensors in data order, as the reference writes.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::map<std::string, std::string> full_metadata = metadata;
  full_metadata.try_emplace("format", "pt");
  header[std::string(kMetadataKey)] = full_metadata;
  uint64_t offset = 0;
  for (const TensorToWrite* tensor : order) {
    const uint64_t end = offset + tensor->data.size();
    header[tensor->name] = {
        {"dtype", DescriptionOf(tensor->dtype).name}, {"shape", tensor->shape}, {"data_offsets", {offset, end}}};
    offset = end;
  }

  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::type_error& e) {
    // The only failure dump() has: a name or metadata string that is not UTF-8, which JSON cannot carry.
    return FileError(absl::StatusCode::kInvalidArgument, path, absl::StrCat("cannot encode the header: ", e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kMaxHeaderSize) {
    return FileError(absl::StatusCode::kInvalidArgument, path,
                     absl::StrCat("header of ", text.size(), " bytes exceeds the format's limit of ", kMaxHeaderSize));
  }
  return text;
}

}  // namespace

std::string_view DTypeName(DType dtype) { return DescriptionOf(dtype).name; }

std::optional<DType> ParseDType(std::string_view name) {
  for (const DTypeDescription& description : kDTypes) {
    if (description.name == name) return description.dtype;
  }
  return std::nullopt;
}

int DTypeBits(DType dtype) { return DescriptionOf(dtype).bits; }

absl::StatusOr<uint64_t> TensorByteSize(DType dtype, absl::Span<const int64_t> shape) {
  uint64_t numel = 1;
  for (int64_t dim : shape) {
    if (dim < 0)
      return absl::InvalidArgumentError(absl::StrCat("shape ", FormatShape(shape), " has a negative dimension"));
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dim), &numel)) {
      return absl::InvalidArgumentError(absl::StrCat("shape ", FormatShape(shape), " overflows 64 bits"));
    }
  }
  // Like the reference, the size in bits must fit 64 bits, not just the size in bytes.
  uint64_t bits = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(DTypeBits(dtype)), &bits)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dtype ", DescriptionOf(dtype).name, " shape ", FormatShape(shape), " overflows 64 bits"));
  }
  if (bits % 8 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("dtype ", DescriptionOf(dtype).name, " shape ", FormatShape(shape),
                                                   " holds ", bits, " bits, not a whole number of bytes"));
  }
  return bits / 8;
}

absl::StatusOr<SafetensorsLayout> ParseSafetensorsLayout(absl::Span<const std::byte> file, const fs::path& path) {
  const uint64_t file_size = file.size();
  if (file_size < kSizePrefixBytes) {
    return FileError(absl::StatusCode::kDataLoss, path,
                     absl::StrCat("file is ", file_size, " bytes, shorter than the 8-byte header size"));
  }
  const uint64_t header_size = ReadLittleEndian64(file.data());
  if (header_size > kMaxHeaderSize) {
    return FileError(absl::StatusCode::kInvalidArgument, path,
                     absl::StrCat("header size ", header_size, " exceeds the format's limit of ", kMaxHeaderSize));
  }
  if (header_size > file_size - kSizePrefixBytes) {
    return FileError(absl::StatusCode::kDataLoss, path,
                     absl::StrCat("header size ", header_size, " needs ", kSizePrefixBytes + header_size,
                                  " bytes but the file has ", file_size));
  }
  const std::string_view header_text(reinterpret_cast<const char*>(file.data() + kSizePrefixBytes), header_size);
  AGORA_ASSIGN_OR_RETURN(Json header, ParseHeaderJson(path, header_text));

  SafetensorsLayout layout;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      AGORA_ASSIGN_OR_RETURN(layout.metadata, ParseMetadata(path, value));
    } else {
      AGORA_ASSIGN_OR_RETURN(TensorInfo info, ParseTensorEntry(path, key, value));
      layout.tensors.push_back(std::move(info));
    }
  }
  // The reference sorts by offsets too: writers have used different orders (by name, by dtype) in the header.
  std::sort(layout.tensors.begin(), layout.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  layout.data_offset = kSizePrefixBytes + header_size;
  AGORA_RETURN_IF_ERROR(ValidateLayout(path, layout.tensors, file_size - layout.data_offset));
  return layout;
}

SafetensorsFile::SafetensorsFile(fs::path path, const std::byte* mapping, size_t mapping_size)
    : path_(std::move(path)), mapping_(mapping), mapping_size_(mapping_size) {}

SafetensorsFile::~SafetensorsFile() { ::munmap(const_cast<std::byte*>(mapping_), mapping_size_); }

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoError("cannot stat", path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return FileError(absl::StatusCode::kInvalidArgument, path, "not a regular file");
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  // Checked before mapping: mmap rejects a length of 0, and a shorter file cannot hold the size prefix anyway.
  if (file_size < kSizePrefixBytes) {
    ::close(fd);
    return FileError(absl::StatusCode::kDataLoss, path,
                     absl::StrCat("file is ", file_size, " bytes, shorter than the 8-byte header size"));
  }
  void* mapping = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int mmap_errno = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (mapping == MAP_FAILED) return ErrnoError("cannot mmap", path, mmap_errno);
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile(path, static_cast<const std::byte*>(mapping), file_size));
  AGORA_ASSIGN_OR_RETURN(SafetensorsLayout layout,
                         ParseSafetensorsLayout(absl::MakeConstSpan(file->mapping_, file_size), path));
  file->tensors_ = std::move(layout.tensors);
  file->metadata_ = std::move(layout.metadata);
  file->data_ = file->mapping_ + layout.data_offset;
  for (size_t i = 0; i < file->tensors_.size(); ++i) file->index_.emplace(file->tensors_[i].name, i);
  return file;
}

const TensorInfo* SafetensorsFile::Find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::Span<const std::byte> SafetensorsFile::Data(const TensorInfo& info) const {
  return absl::MakeConstSpan(data_ + info.begin, info.end - info.begin);
}

absl::Status WriteSafetensors(const fs::path& path, absl::Span<const TensorToWrite> tensors,
                              const std::map<std::string, std::string>& metadata) {
  AGORA_RETURN_IF_ERROR(ValidateTensorsToWrite(path, tensors));
  const std::vector<const TensorToWrite*> order = LayoutOrder(tensors);
  AGORA_ASSIGN_OR_RETURN(std::string header, BuildHeader(path, order, metadata));
  return WriteFileAtomically(path, [&](int fd) -> absl::Status {
    AGORA_RETURN_IF_ERROR(WriteFully(fd, LittleEndian64(header.size())));
    AGORA_RETURN_IF_ERROR(WriteFully(fd, header));
    for (const TensorToWrite* tensor : order) AGORA_RETURN_IF_ERROR(WriteFully(fd, tensor->data));
    return absl::OkStatus();
  });
}

}  // namespace agora
