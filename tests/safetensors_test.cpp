// The safetensors reader and writer, and the atomic-file helper under the writer.
//
// The oracle is the reference `safetensors` Python package, in both directions:
// - AGORA_SAFETENSORS_FIXTURES names a directory made by tests/oracle/make_safetensors_fixtures.py: files the
//   reference wrote, and fixtures.json describing them; we must read them, and rewrite them byte for byte.
// - AGORA_SAFETENSORS_OUT names a directory where we write agora_written.safetensors and agora_written.json;
//   tests/oracle/check_safetensors_readback.py, run after this test, reads them with the reference.
// Tests needing a directory are skipped when its variable is unset (ctest always sets both).

#include "models/safetensors.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "util/atomic_file.h"

namespace agora {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// A fresh directory per test, removed afterwards.
class ScratchDir {
 public:
  ScratchDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("agora_safetensors_test." + std::to_string(::getpid()) + "." + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

  std::vector<std::string> Entries() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(path_)) names.push_back(entry.path().filename().string());
    return names;
  }

 private:
  fs::path path_;
};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const fs::path& path, const std::string& contents) { std::ofstream(path, std::ios::binary) << contents; }

std::string LittleEndian64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(value >> (8 * i));
  return bytes;
}

// A safetensors file made by hand: the size prefix, `header`, then `data_size` bytes of data.
void WriteRawSafetensors(const fs::path& path, const std::string& header, size_t data_size) {
  WriteFile(path, LittleEndian64(header.size()) + header + std::string(data_size, '\x5a'));
}

std::string Hex(absl::Span<const std::byte> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (std::byte b : bytes) {
    hex += kDigits[std::to_integer<int>(b) >> 4];
    hex += kDigits[std::to_integer<int>(b) & 15];
  }
  return hex;
}

// Opens `path`, which must fail with `code` and a message holding each of `fragments`.
void ExpectOpenFails(const fs::path& path, absl::StatusCode code, const std::vector<std::string>& fragments) {
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok()) << path << " opened";
  EXPECT_EQ(file.status().code(), code) << file.status();
  const std::string message(file.status().message());
  EXPECT_THAT(message, HasSubstr(path.string()));
  for (const std::string& fragment : fragments) EXPECT_THAT(message, HasSubstr(fragment));
}

struct OwnedTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;
};

// One random tensor of every dtype, with 0-dim and empty shapes among them; sub-byte shapes fill whole bytes.
std::vector<OwnedTensor> RandomTensors(uint64_t seed) {
  const std::vector<std::pair<DType, std::vector<int64_t>>> specs = {
      {DType::kBool, {3}},   {DType::kF4, {2, 4}},      {DType::kF6E2M3, {4}},     {DType::kF6E3M2, {2, 4}},
      {DType::kU8, {7}},     {DType::kI8, {2, 3}},      {DType::kF8E5M2, {5}},     {DType::kF8E4M3, {}},
      {DType::kF8E8M0, {3}}, {DType::kF8E4M3Fnuz, {2}}, {DType::kF8E5M2Fnuz, {1}}, {DType::kI16, {3, 1}},
      {DType::kU16, {0}},    {DType::kF16, {2, 3, 2}},  {DType::kBF16, {5}},       {DType::kI32, {}},
      {DType::kU32, {2}},    {DType::kF32, {3, 4}},     {DType::kC64, {2}},        {DType::kF64, {0, 3}},
      {DType::kI64, {4}},    {DType::kU64, {1}},
  };
  std::mt19937_64 rng(seed);
  std::vector<OwnedTensor> tensors;
  for (const auto& [dtype, shape] : specs) {
    OwnedTensor tensor{"t." + std::string(DTypeName(dtype)), dtype, shape, {}};
    tensor.bytes.resize(*TensorByteSize(dtype, shape));
    for (std::byte& b : tensor.bytes) b = static_cast<std::byte>(rng());
    tensors.push_back(std::move(tensor));
  }
  return tensors;
}

std::vector<TensorToWrite> ToWrite(const std::vector<OwnedTensor>& tensors) {
  std::vector<TensorToWrite> out;
  for (const OwnedTensor& t : tensors) out.push_back({t.name, t.dtype, t.shape, t.bytes});
  return out;
}

void ExpectHolds(const SafetensorsFile& file, const std::vector<OwnedTensor>& tensors) {
  ASSERT_EQ(file.tensors().size(), tensors.size());
  for (const OwnedTensor& want : tensors) {
    const TensorInfo* info = file.Find(want.name);
    ASSERT_NE(info, nullptr) << want.name;
    EXPECT_EQ(info->dtype, want.dtype) << want.name;
    EXPECT_EQ(info->shape, want.shape) << want.name;
    EXPECT_EQ(Hex(file.Data(*info)), Hex(want.bytes)) << want.name;
  }
}

TEST(DType, NamesRoundTripAndSizes) {
  for (int i = 0; i <= static_cast<int>(DType::kU64); ++i) {
    const DType dtype = static_cast<DType>(i);
    EXPECT_EQ(ParseDType(DTypeName(dtype)), dtype) << DTypeName(dtype);
  }
  EXPECT_EQ(ParseDType("F13"), std::nullopt);
  EXPECT_EQ(ParseDType("f32"), std::nullopt);
  EXPECT_EQ(DTypeName(DType::kF8E4M3Fnuz), "F8_E4M3FNUZ");
  EXPECT_EQ(DTypeBits(DType::kF4), 4);
  EXPECT_EQ(DTypeBits(DType::kF6E3M2), 6);
  EXPECT_EQ(DTypeBits(DType::kBool), 8);
  EXPECT_EQ(DTypeBits(DType::kC64), 64);
}

TEST(TensorByteSize, CountsBitsAndRejectsBadShapes) {
  EXPECT_EQ(*TensorByteSize(DType::kF32, {}), 4u);
  EXPECT_EQ(*TensorByteSize(DType::kBF16, {3, 0, 5}), 0u);
  EXPECT_EQ(*TensorByteSize(DType::kF4, {2, 3}), 3u);
  EXPECT_EQ(*TensorByteSize(DType::kF6E2M3, {4}), 3u);
  EXPECT_THAT(std::string(TensorByteSize(DType::kF4, {3}).status().message()),
              HasSubstr("dtype F4 shape [3] holds 12 bits, not a whole number of bytes"));
  EXPECT_THAT(std::string(TensorByteSize(DType::kF32, {2, -1}).status().message()), HasSubstr("negative"));
  EXPECT_THAT(std::string(TensorByteSize(DType::kU8, {int64_t{1} << 40, int64_t{1} << 40}).status().message()),
              HasSubstr("overflows"));
  // The bit count overflows although the byte count would not: rejected, as by the reference.
  EXPECT_FALSE(TensorByteSize(DType::kF64, {int64_t{1} << 60}).ok());
}

TEST(Safetensors, RoundTripsEveryDType) {
  ScratchDir dir;
  const std::vector<OwnedTensor> tensors = RandomTensors(1);
  const fs::path path = dir / "model.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, ToWrite(tensors), {{"step", "12"}}).ok());

  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ExpectHolds(**file, tensors);
  EXPECT_EQ((*file)->metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"step", "12"}}));
  EXPECT_EQ((*file)->path(), path);
  EXPECT_EQ((*file)->Find("missing"), nullptr);

  // The reference layout: descending dtype rank, so every tensor's offset is a multiple of its element size.
  const std::vector<TensorInfo>& infos = (*file)->tensors();
  for (size_t i = 1; i < infos.size(); ++i) EXPECT_GT(infos[i - 1].dtype, infos[i].dtype);
  for (const TensorInfo& info : infos) {
    if (DTypeBits(info.dtype) >= 8) {
      EXPECT_EQ(info.begin % (DTypeBits(info.dtype) / 8), 0u) << info.name;
    }
  }
  // The header is padded so that the data buffer starts 8-aligned.
  const std::string content = ReadFile(path);
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = header_size << 8 | static_cast<unsigned char>(content[i]);
  EXPECT_EQ(header_size % 8, 0u);
}

TEST(Safetensors, SortsSameDTypeByName) {
  ScratchDir dir;
  const std::vector<std::byte> four(4);
  const std::vector<TensorToWrite> tensors = {
      {"b", DType::kF32, {1}, four}, {"a", DType::kF32, {1}, four}, {"c", DType::kU8, {4}, four}};
  ASSERT_TRUE(WriteSafetensors(dir / "x.safetensors", tensors, {}).ok());
  auto file = SafetensorsFile::Open(dir / "x.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  std::vector<std::string> order;
  for (const TensorInfo& info : (*file)->tensors()) order.push_back(info.name);
  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(Safetensors, CallerFormatWins) {
  ScratchDir dir;
  ASSERT_TRUE(WriteSafetensors(dir / "x.safetensors", {}, {{"format", "np"}}).ok());
  auto file = SafetensorsFile::Open(dir / "x.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata(), (std::map<std::string, std::string>{{"format", "np"}}));
}

TEST(Safetensors, NoTensors) {
  ScratchDir dir;
  ASSERT_TRUE(WriteSafetensors(dir / "empty.safetensors", {}, {}).ok());
  auto file = SafetensorsFile::Open(dir / "empty.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE((*file)->tensors().empty());

  // "{}" and nothing else: no metadata, no data buffer.
  WriteRawSafetensors(dir / "bare.safetensors", "{}", 0);
  file = SafetensorsFile::Open(dir / "bare.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE((*file)->tensors().empty());
  EXPECT_TRUE((*file)->metadata().empty());
}

TEST(Safetensors, AcceptsAnyHeaderOrderAndPadding) {
  ScratchDir dir;
  // Older writers ordered entries by name; offsets decide the layout. Spaces pad the header.
  WriteRawSafetensors(dir / "x.safetensors",
                      R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},)"
                      R"("b":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"__metadata__":null}     )",
                      6);
  auto file = SafetensorsFile::Open(dir / "x.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ((*file)->tensors().size(), 2u);
  EXPECT_EQ((*file)->tensors()[0].name, "b");
  EXPECT_EQ((*file)->Data(*(*file)->Find("a")).size(), 2u);
}

// ---- Malformed files: one test per error ----

TEST(SafetensorsOpen, ZeroLengthFile) {
  ScratchDir dir;
  WriteFile(dir / "x.safetensors", "");
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kDataLoss, {"file is 0 bytes", "8-byte header size"});
}

TEST(SafetensorsOpen, ShorterThanSizePrefix) {
  ScratchDir dir;
  WriteFile(dir / "x.safetensors", "abc");
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kDataLoss, {"file is 3 bytes"});
}

TEST(SafetensorsOpen, MissingFile) {
  ScratchDir dir;
  ExpectOpenFails(dir / "absent.safetensors", absl::StatusCode::kNotFound, {"No such file or directory"});
}

TEST(SafetensorsOpen, HeaderSizeLargerThanFile) {
  ScratchDir dir;
  WriteFile(dir / "x.safetensors", LittleEndian64(100) + "{}        ");
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kDataLoss,
                  {"header size 100 needs 108 bytes but the file has 18"});
}

TEST(SafetensorsOpen, HeaderSizeOverLimit) {
  ScratchDir dir;
  WriteFile(dir / "x.safetensors", LittleEndian64(100'000'001) + "{}");
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument,
                  {"header size 100000001 exceeds the format's limit of 100000000"});
}

TEST(SafetensorsOpen, HeaderNotJson) {
  ScratchDir dir;
  WriteRawSafetensors(dir / "x.safetensors", R"({"w": {"dtype": "F32",)", 0);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument, {"header is not valid JSON"});
  // A number no double holds: nlohmann reports it with another exception type than syntax errors.
  WriteRawSafetensors(dir / "x.safetensors", R"({"w": {"dtype": "F32", "shape": [1e999], "data_offsets": [0, 4]}})", 4);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument, {"header is not valid JSON"});
}

TEST(SafetensorsOpen, HeaderWithTrailingGarbage) {
  ScratchDir dir;
  WriteRawSafetensors(dir / "x.safetensors", std::string("{}\0\0", 4), 0);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument,
                  {"header is not valid JSON: NUL byte at offset 2"});
  WriteRawSafetensors(dir / "x.safetensors", "{} x", 0);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument, {"header is not valid JSON"});
}

TEST(SafetensorsOpen, HeaderNotObject) {
  ScratchDir dir;
  WriteRawSafetensors(dir / "x.safetensors", "[1, 2]", 0);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument,
                  {"header is a JSON array, expected an object"});
}

TEST(SafetensorsOpen, EntryNotObject) {
  ScratchDir dir;
  WriteRawSafetensors(dir / "x.safetensors", R"({"w": 3})", 0);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument,
                  {"tensor 'w': entry is 3, expected an object"});
}

TEST(SafetensorsOpen, MissingFields) {
  ScratchDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"dtype", R"({"w": {"shape": [1], "data_offsets": [0, 4]}})"},
      {"shape", R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})"},
      {"data_offsets", R"({"w": {"dtype": "F32", "shape": [1]}})"},
  };
  for (const auto& [field, header] : cases) {
    WriteRawSafetensors(dir / "x.safetensors", header, 4);
    ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument,
                    {"tensor 'w': missing \"" + field + "\""});
  }
}

TEST(SafetensorsOpen, UnsupportedDType) {
  ScratchDir dir;
  WriteRawSafetensors(dir / "x.safetensors", R"({"w": {"dtype": "F13", "shape": [1], "data_offsets": [0, 4]}})", 4);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument, {"tensor 'w': unsupported dtype \"F13\""});
}

TEST(SafetensorsOpen, DTypeNotString) {
  ScratchDir dir;
  WriteRawSafetensors(dir / "x.safetensors", R"({"w": {"dtype": 32, "shape": [1], "data_offsets": [0, 4]}})", 4);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument,
                  {"tensor 'w': dtype is 32, expected a string"});
}

TEST(SafetensorsOpen, NegativeShape) {
  ScratchDir dir;
  WriteRawSafetensors(dir / "x.safetensors", R"({"w": {"dtype": "F32", "shape": [2, -3], "data_offsets": [0, 4]}})", 4);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument,
                  {"tensor 'w': shape[1] is -3, expected a non-negative integer"});
}

TEST(SafetensorsOpen, FractionalShape) {
  ScratchDir dir;
  WriteRawSafetensors(dir / "x.safetensors", R"({"w": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}})", 4);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument,
                  {"tensor 'w': shape[0] is 1.0, expected a non-negative integer"});
}

TEST(SafetensorsOpen, ShapeOverflow) {
  ScratchDir dir;
  WriteRawSafetensors(dir / "x.safetensors",
                      R"({"w": {"dtype": "U8", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})", 0);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument,
                  {"tensor 'w': shape [4294967296, 4294967296] overflows 64 bits"});
}

TEST(SafetensorsOpen, MalformedOffsets) {
  ScratchDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"([0])", "data_offsets is [0], expected [begin, end]"},
      {R"([-1, 3])", "data_offsets[0] is -1, expected a non-negative integer"},
      {R"([16, 0])", "data_offsets [16, 0] end before they begin"},
  };
  for (const auto& [offsets, message] : cases) {
    WriteRawSafetensors(dir / "x.safetensors",
                        R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": )" + offsets + "}}", 16);
    ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument, {"tensor 'w': " + message});
  }
}

TEST(SafetensorsOpen, OffsetsPastEndOfFile) {
  ScratchDir dir;
  WriteRawSafetensors(dir / "x.safetensors", R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kDataLoss,
                  {"tensor 'w': data_offsets [0, 16] run past the end of the file", "holds 8 bytes"});
}

TEST(SafetensorsOpen, HoleBetweenTensors) {
  ScratchDir dir;
  WriteRawSafetensors(dir / "x.safetensors",
                      R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},)"
                      R"( "b": {"dtype": "F32", "shape": [4], "data_offsets": [20, 36]}})",
                      36);
  ExpectOpenFails(
      dir / "x.safetensors", absl::StatusCode::kInvalidArgument,
      {"tensor 'b': data_offsets [20, 36] leave a hole: expected it to begin at 16, the end of tensor 'a'"});
}

TEST(SafetensorsOpen, HoleAtStart) {
  ScratchDir dir;
  WriteRawSafetensors(dir / "x.safetensors", R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}})", 8);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument,
                  {"tensor 'a': data_offsets [4, 8] leave a hole: expected it to begin at 0, the start"});
}

TEST(SafetensorsOpen, OverlappingTensors) {
  ScratchDir dir;
  WriteRawSafetensors(dir / "x.safetensors",
                      R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},)"
                      R"( "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})",
                      24);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument,
                  {"tensor 'b': data_offsets [8, 24] overlap tensor 'a' at [0, 16]"});
}

TEST(SafetensorsOpen, SizeMismatchesShape) {
  ScratchDir dir;
  const fs::path path = dir / "model.safetensors";
  WriteRawSafetensors(path, R"({"model.norm.weight": {"dtype": "F32", "shape": [4], "data_offsets": [0, 10]}})", 10);
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status(),
            absl::InvalidArgumentError(path.string() + ": tensor 'model.norm.weight': data_offsets [0, 10] span 10 "
                                                       "bytes but dtype F32 shape [4] needs 16"));
}

TEST(SafetensorsOpen, SubByteTensorNotWholeBytes) {
  ScratchDir dir;
  WriteRawSafetensors(dir / "x.safetensors", R"({"q": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}})", 2);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument,
                  {"tensor 'q': dtype F4 shape [3] holds 12 bits, not a whole number of bytes"});
}

TEST(SafetensorsOpen, TrailingBytes) {
  ScratchDir dir;
  WriteRawSafetensors(dir / "x.safetensors", R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 20);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument,
                  {"4 trailing bytes: the tensors end at byte 16 of the data buffer but it holds 20"});
}

TEST(SafetensorsOpen, DuplicateTensorNames) {
  ScratchDir dir;
  WriteRawSafetensors(dir / "x.safetensors",
                      R"({"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},)"
                      R"( "w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}})",
                      4);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument, {"duplicate tensor name 'w'"});
}

TEST(SafetensorsOpen, DuplicateFieldInEntry) {
  ScratchDir dir;
  WriteRawSafetensors(dir / "x.safetensors",
                      R"({"w": {"dtype": "U8", "dtype": "I8", "shape": [4], "data_offsets": [0, 4]}})", 4);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument, {"entry 'w' has a duplicate key 'dtype'"});
}

TEST(SafetensorsOpen, MetadataNotStrings) {
  ScratchDir dir;
  WriteRawSafetensors(dir / "x.safetensors", R"({"__metadata__": {"step": 12}})", 0);
  ExpectOpenFails(dir / "x.safetensors", absl::StatusCode::kInvalidArgument,
                  {"__metadata__ key 'step' is 12, expected a string"});
}

// ---- The writer ----

TEST(WriteSafetensors, RejectsSizeMismatchAndLeavesOldFileUntouched) {
  ScratchDir dir;
  const fs::path path = dir / "model.safetensors";
  WriteFile(path, "old contents");
  const std::vector<std::byte> ten(10);
  const absl::Status status = WriteSafetensors(path, {{"model.norm.weight", DType::kF32, {4}, ten}}, {});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr(path.string() + ": tensor 'model.norm.weight': dtype F32 shape [4] needs 16 bytes but 10 "
                                        "were given"));
  EXPECT_EQ(ReadFile(path), "old contents");
  EXPECT_EQ(dir.Entries(), std::vector<std::string>{"model.safetensors"});
}

TEST(WriteSafetensors, RejectsDuplicateAndReservedNames) {
  ScratchDir dir;
  const std::vector<std::byte> one(1);
  absl::Status status =
      WriteSafetensors(dir / "x.safetensors", {{"a", DType::kU8, {1}, one}, {"a", DType::kU8, {1}, one}}, {});
  EXPECT_THAT(std::string(status.message()), HasSubstr("duplicate tensor name 'a'"));
  status = WriteSafetensors(dir / "x.safetensors", {{"__metadata__", DType::kU8, {1}, one}}, {});
  EXPECT_THAT(std::string(status.message()), HasSubstr("tensor '__metadata__': the name is reserved"));
  EXPECT_TRUE(dir.Entries().empty());
}

TEST(WriteSafetensors, RejectsNonUtf8Name) {
  ScratchDir dir;
  const std::vector<std::byte> one(1);
  const absl::Status status = WriteSafetensors(dir / "x.safetensors", {{"bad\xff", DType::kU8, {1}, one}}, {});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("cannot encode the header"));
  EXPECT_TRUE(dir.Entries().empty());
}

// ---- The atomic-file helper ----

TEST(WriteFileAtomically, ReplacesFile) {
  ScratchDir dir;
  WriteFile(dir / "f", "old");
  ASSERT_TRUE(WriteStringAtomically(dir / "f", "new contents").ok());
  EXPECT_EQ(ReadFile(dir / "f"), "new contents");
  EXPECT_EQ(dir.Entries(), std::vector<std::string>{"f"});
}

TEST(WriteFileAtomically, FailedWriteLeavesOldFileAndNoTempFile) {
  ScratchDir dir;
  WriteFile(dir / "f", "old");
  const absl::Status status = WriteFileAtomically(dir / "f", [](int fd) {
    EXPECT_TRUE(WriteFully(fd, "partial").ok());
    return absl::ResourceExhaustedError("disk full, pretend");
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(status.message(), "writing " + (dir / "f").string() + ": disk full, pretend");
  EXPECT_EQ(ReadFile(dir / "f"), "old");
  EXPECT_EQ(dir.Entries(), std::vector<std::string>{"f"});
}

TEST(WriteFileAtomically, MissingDirectory) {
  ScratchDir dir;
  const absl::Status status = WriteStringAtomically(dir / "no" / "f", "x");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()), HasSubstr((dir / "no" / "f").string()));
  EXPECT_THAT(std::string(status.message()), HasSubstr("No such file or directory"));
}

TEST(WriteFileAtomically, TargetIsDirectory) {
  ScratchDir dir;
  fs::create_directory(dir / "d");
  const absl::Status status = WriteStringAtomically(dir / "d", "x");
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("cannot rename"));
  EXPECT_EQ(dir.Entries(), std::vector<std::string>{"d"});
}

// ---- The reference implementation as oracle ----

const char* EnvDir(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

std::vector<std::byte> FromHex(const std::string& hex) {
  std::vector<std::byte> bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<std::byte>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return bytes;
}

TEST(ReferenceOracle, ReadsAndRewritesFilesTheReferenceWrote) {
  const char* fixtures = EnvDir("AGORA_SAFETENSORS_FIXTURES");
  if (fixtures == nullptr) GTEST_SKIP() << "AGORA_SAFETENSORS_FIXTURES is not set";
  const Json description = Json::parse(ReadFile(fs::path(fixtures) / "fixtures.json"));
  ASSERT_FALSE(description["files"].empty());
  ScratchDir dir;
  for (const auto& [file_name, expected] : description["files"].items()) {
    SCOPED_TRACE(file_name);
    const fs::path path = fs::path(fixtures) / file_name;
    auto file = SafetensorsFile::Open(path);
    ASSERT_TRUE(file.ok()) << file.status();
    using Metadata = std::map<std::string, std::string>;
    EXPECT_EQ((*file)->metadata(), expected["metadata"].get<Metadata>());

    std::vector<OwnedTensor> want;
    for (const auto& [name, tensor] : expected["tensors"].items()) {
      const std::optional<DType> dtype = ParseDType(tensor["dtype"].get<std::string>());
      ASSERT_TRUE(dtype.has_value()) << tensor["dtype"];
      want.push_back(
          {name, *dtype, tensor["shape"].get<std::vector<int64_t>>(), FromHex(tensor["hex"].get<std::string>())});
    }
    ExpectHolds(**file, want);

    if (expected["byte_identical"].get<bool>()) {
      std::vector<TensorToWrite> rewrite;
      for (const TensorInfo& info : (*file)->tensors()) {
        rewrite.push_back({info.name, info.dtype, info.shape, (*file)->Data(info)});
      }
      const fs::path copy = dir / file_name;
      ASSERT_TRUE(WriteSafetensors(copy, rewrite, (*file)->metadata()).ok());
      EXPECT_EQ(ReadFile(copy), ReadFile(path)) << "our layout or header differs from the reference writer's";
    }
  }
}

TEST(ReferenceOracle, WritesFileForReferenceReadback) {
  const char* out = EnvDir("AGORA_SAFETENSORS_OUT");
  if (out == nullptr) GTEST_SKIP() << "AGORA_SAFETENSORS_OUT is not set";
  fs::create_directories(out);
  const std::vector<OwnedTensor> tensors = RandomTensors(2);
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"written_by", "agora"}, {"quote", "a \"b\""}};
  ASSERT_TRUE(WriteSafetensors(fs::path(out) / "agora_written.safetensors", ToWrite(tensors), metadata).ok());

  Json expected = {{"metadata", metadata}, {"tensors", Json::object()}};
  for (const OwnedTensor& t : tensors) {
    expected["tensors"][t.name] = {{"dtype", DTypeName(t.dtype)}, {"shape", t.shape}, {"hex", Hex(t.bytes)}};
  }
  ASSERT_TRUE(WriteStringAtomically(fs::path(out) / "agora_written.json", expected.dump(1)).ok());
}

}  // namespace
}  // namespace agora
