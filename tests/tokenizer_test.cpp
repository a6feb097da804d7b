// Tests of the in-house sentencepiece tokenizer against the official library's output.
//
// AGORA_TOKENIZER_FIXTURES names the folder tests/oracle/make_tokenizer_fixtures.py wrote: *.model files and
// the ids, pieces and decoded text sentencepiece produced for each test string (*_cases.json).
#include <bit>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "data/sentencepiece_tokenizer.h"
#include "data/load_tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixture_dir.h"
#include "util/read_file.h"

namespace agora {
namespace {

using ::testing::HasSubstr;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

std::filesystem::path FixtureDir() { return testing::FixtureDir("AGORA_TOKENIZER_FIXTURES"); }

std::string ReadBytes(const std::filesystem::path& path) {
  absl::StatusOr<std::string> bytes = ReadFile(path);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : "";
}

std::unique_ptr<SentencePieceTokenizer> LoadFixtureModel(const std::string& file_name) {
  const std::filesystem::path dir = FixtureDir();
  if (dir.empty()) return nullptr;
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer = SentencePieceTokenizer::Load(dir / file_name);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
}

struct OracleCase {
  std::string text;
  std::vector<int32_t> ids;
  std::vector<int32_t> ids_bos_eos;
  std::vector<std::string> pieces;
  std::string decoded;
};

struct SpecialCase {
  std::string text;
  std::vector<int32_t> ids;
};

struct Oracle {
  std::vector<OracleCase> cases;
  std::vector<SpecialCase> special_cases;
};

Oracle ReadOracle(const std::string& model_name) {
  Oracle oracle;
  const std::filesystem::path dir = FixtureDir();
  if (dir.empty()) return oracle;
  std::ifstream in(dir / (model_name + "_cases.json"));
  if (!in) {
    ADD_FAILURE() << "cannot read " << (dir / (model_name + "_cases.json"));
    return oracle;
  }
  const nlohmann::json json = nlohmann::json::parse(in);
  for (const nlohmann::json& c : json.at("cases")) {
    // Strings that are not valid UTF-8 cannot be JSON strings; they come hex-encoded.
    std::string text = c.contains("text_hex") ? absl::HexStringToBytes(c.at("text_hex").get<std::string>())
                                              : c.at("text").get<std::string>();
    oracle.cases.push_back({std::move(text), c.at("ids").get<std::vector<int32_t>>(),
                            c.at("ids_bos_eos").get<std::vector<int32_t>>(),
                            c.at("pieces").get<std::vector<std::string>>(), c.at("decoded").get<std::string>()});
  }
  for (const nlohmann::json& c : json.at("special_cases")) {
    oracle.special_cases.push_back({c.at("text").get<std::string>(), c.at("ids").get<std::vector<int32_t>>()});
  }
  return oracle;
}

// Compares `actual(case)` with `expected(case)` for every case, reporting the first few mismatches only.
template <typename Case, typename Actual, typename Expected>
void ExpectAllMatch(const std::vector<Case>& cases, Actual actual, Expected expected) {
  ASSERT_FALSE(cases.empty());
  int mismatches = 0;
  for (const Case& c : cases) {
    if (actual(c) == expected(c)) continue;
    if (++mismatches <= 10) {
      ADD_FAILURE() << "text: " << ::testing::PrintToString(c.text) << "\n  got: "
                    << ::testing::PrintToString(actual(c)) << "\n want: " << ::testing::PrintToString(expected(c));
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << cases.size() << " cases";
}

// tokenizer: Llama-2 settings; variant: no byte fallback, extra-whitespace removal, user-defined symbols;
// unused: variant with UNUSED pieces.
class OracleTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    tokenizer_ = LoadFixtureModel(GetParam() + ".model");
    ASSERT_NE(tokenizer_, nullptr);
    oracle_ = ReadOracle(GetParam());
  }

  std::unique_ptr<SentencePieceTokenizer> tokenizer_;
  Oracle oracle_;
};

TEST_P(OracleTest, IdsMatchSentencePiece) {
  ExpectAllMatch(
      oracle_.cases, [&](const OracleCase& c) { return tokenizer_->Encode(c.text); },
      [](const OracleCase& c) { return c.ids; });
}

TEST_P(OracleTest, PiecesMatchSentencePiece) {
  ExpectAllMatch(
      oracle_.cases, [&](const OracleCase& c) { return tokenizer_->EncodeAsPieces(c.text); },
      [](const OracleCase& c) { return c.pieces; });
}

TEST_P(OracleTest, DecodeMatchesSentencePiece) {
  ExpectAllMatch(
      oracle_.cases, [&](const OracleCase& c) { return tokenizer_->Decode(c.ids); },
      [](const OracleCase& c) { return c.decoded; });
}

TEST_P(OracleTest, BosAndEosMatchSentencePiece) {
  ExpectAllMatch(
      oracle_.cases,
      [&](const OracleCase& c) { return tokenizer_->Encode(c.text, {.add_bos = true, .add_eos = true}); },
      [](const OracleCase& c) { return c.ids_bos_eos; });
}

TEST_P(OracleTest, ParseSpecialMatchesSegmentwiseSentencePiece) {
  ExpectAllMatch(
      oracle_.special_cases, [&](const SpecialCase& c) { return tokenizer_->Encode(c.text, {.parse_special = true}); },
      [](const SpecialCase& c) { return c.ids; });
}

INSTANTIATE_TEST_SUITE_P(Models, OracleTest, ::testing::Values("tokenizer", "variant", "unused"));

TEST(SentencePieceTokenizerTest, LlamaStyleSpecialIdsAndLookups) {
  const std::unique_ptr<SentencePieceTokenizer> tokenizer = LoadFixtureModel("tokenizer.model");
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->vocab_size(), 800);
  EXPECT_EQ(tokenizer->bos_id(), 1);
  EXPECT_EQ(tokenizer->eos_id(), 2);
  EXPECT_EQ(tokenizer->pad_id(), std::nullopt);
  EXPECT_EQ(tokenizer->PieceToId("<s>"), 1);
  EXPECT_EQ(tokenizer->PieceToId("<0x0A>"), 3 + 0x0a);  // byte pieces follow <unk>, <s>, </s>
  EXPECT_EQ(tokenizer->PieceToId("not a piece"), std::nullopt);
  EXPECT_EQ(tokenizer->IdToPiece(0), "<unk>");
  EXPECT_EQ(tokenizer->IdToPiece(-1), "");
  EXPECT_EQ(tokenizer->IdToPiece(800), "");
  // Control tokens decode to nothing; ids outside the vocabulary decode like <unk>.
  EXPECT_EQ(tokenizer->Decode({1, 2}), "");
  EXPECT_EQ(tokenizer->Decode({-5, 100000}), " \xe2\x81\x87  \xe2\x81\x87 ");
  // Without parse_special the text of a control token is plain text.
  EXPECT_THAT(tokenizer->Encode("<s>"), ::testing::Not(::testing::Contains(1)));
  EXPECT_EQ(tokenizer->Encode("<s>", {.parse_special = true}), std::vector<int32_t>{1});
}

TEST(SentencePieceTokenizerTest, VariantPadAndUserDefinedPieces) {
  const std::unique_ptr<SentencePieceTokenizer> tokenizer = LoadFixtureModel("variant.model");
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->pad_id(), 3);
  const std::optional<int32_t> tool = tokenizer->PieceToId("<tool>");
  ASSERT_TRUE(tool.has_value());
  EXPECT_THAT(tokenizer->Encode("x<tool>y"), ::testing::Contains(*tool));
}

// Long inputs must stay near-linear: a quadratic merge loop would take hours on these.
TEST(SentencePieceTokenizerTest, LongDocumentsEncodeQuicklyAndRoundTrip) {
  const std::unique_ptr<SentencePieceTokenizer> tokenizer = LoadFixtureModel("tokenizer.model");
  ASSERT_NE(tokenizer, nullptr);
  std::string document;
  while (document.size() < 4'000'000) document += "It was the best of times, 12345 café 日本語 🦙🧬\t\n  ";
  const std::string repeated(1'000'000, 'a');
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> document_ids = tokenizer->Encode(document);
  const std::vector<int32_t> repeated_ids = tokenizer->Encode(repeated);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 30.0);
  // Identity normalization without whitespace cleanup is lossless.
  EXPECT_EQ(tokenizer->Decode(document_ids), document);
  EXPECT_EQ(tokenizer->Decode(repeated_ids), repeated);
}

// --- hand-made model files ---

std::string Varint(uint64_t value) {
  std::string out;
  for (; value >= 0x80; value >>= 7) out.push_back(static_cast<char>(value | 0x80));
  out.push_back(static_cast<char>(value));
  return out;
}
std::string Key(uint32_t field, int wire_type) { return Varint(uint64_t{field} << 3 | wire_type); }
std::string VarintField(uint32_t field, uint64_t value) { return Key(field, 0) + Varint(value); }
std::string BytesField(uint32_t field, std::string_view bytes) {
  return Key(field, 2) + Varint(bytes.size()) + std::string(bytes);
}
std::string FloatField(uint32_t field, float value) {
  const auto bits = std::bit_cast<uint32_t>(value);
  std::string out = Key(field, 5);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(bits >> (8 * i)));
  return out;
}
// Fields of every wire type under numbers no sentencepiece message uses; readers must skip them.
std::string UnknownFields() {
  return VarintField(1000, 300) + Key(1001, 1) + std::string(8, '\x7f') + BytesField(1002, "ignored") +
         Key(1003, 3) + VarintField(1, 5) + Key(1004, 3) + Key(1004, 4) + Key(1003, 4) + Key(1005, 5) +
         std::string(4, '\x01');
}

std::string Piece(std::string_view text, float score, int type, std::string_view extra = "") {
  return BytesField(1, BytesField(1, text) + FloatField(2, score) + VarintField(3, type) + std::string(extra));
}

struct TinyModel {
  int model_type = 2;  // BPE
  std::string extra_pieces;
  std::string extra_trainer_fields;
  std::string normalizer_fields = BytesField(1, "identity") + VarintField(4, 0);
  std::string unknown_fields;

  std::string Serialize() const {
    const std::string space = "\xe2\x96\x81";
    // Scores make "aa" and "ab" beat "▁a", and tie with each other.
    return Piece("<unk>", 0, 2) + Piece("<s>", 0, 3) + Piece("</s>", 0, 3) + Piece(space, -1, 1, unknown_fields) +
           Piece("a", -2, 1) + Piece("b", -3, 1) + Piece("aa", 0.5, 1) + Piece(space + "a", -0.5, 1) +
           Piece("ab", 0.5, 1) + extra_pieces +
           BytesField(2, VarintField(3, model_type) + extra_trainer_fields + unknown_fields) +
           BytesField(3, normalizer_fields + unknown_fields) + unknown_fields;
  }
};

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> FromTiny(const TinyModel& model) {
  return SentencePieceTokenizer::FromBytes(model.Serialize(), "tiny.model");
}

TEST(SentencePieceTokenizerTest, TinyModelMergesByScoreThenLeftmost) {
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer = FromTiny({});
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  // "▁aaa": the two "aa" pairs tie; the leftmost wins, leaving "▁", "aa", "a" (right-first would give "▁a", "aa").
  EXPECT_EQ((*tokenizer)->EncodeAsPieces("aaa"), (std::vector<std::string>{"\xe2\x96\x81", "aa", "a"}));
  EXPECT_EQ((*tokenizer)->Encode("aaa"), (std::vector<int32_t>{3, 6, 4}));
  // The higher score merges first: "ab"(0.5) before "▁a"(-0.5).
  EXPECT_EQ((*tokenizer)->Encode("ab"), (std::vector<int32_t>{3, 8}));

  // No byte fallback: unknown characters become one <unk> per run.
  EXPECT_EQ((*tokenizer)->Encode("xyz"), (std::vector<int32_t>{3, 0}));
  EXPECT_EQ((*tokenizer)->Decode({3, 0, 4}), " \xe2\x81\x87 a");
}

TEST(SentencePieceTokenizerTest, SkipsUnknownFieldsOfEveryWireType) {
  TinyModel with_unknown;
  with_unknown.unknown_fields = UnknownFields();
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> plain = FromTiny({});
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer = FromTiny(with_unknown);
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->Encode("aab ba"), (*plain)->Encode("aab ba"));
}

void ExpectInvalid(const std::string& bytes, std::string_view expected_detail) {
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
      SentencePieceTokenizer::FromBytes(bytes, "bad.model");
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kInvalidArgument) << tokenizer.status();
  EXPECT_THAT(Message(tokenizer.status()), HasSubstr("bad.model"));
  EXPECT_THAT(Message(tokenizer.status()), HasSubstr(std::string(expected_detail)));
}

TEST(SentencePieceTokenizerTest, MalformedProtobufIsInvalidArgument) {
  ExpectInvalid(Key(1, 0) + std::string(10, '\xff') + "\x01", "varint");
  ExpectInvalid(Key(1, 0) + "\x80\x80", "truncated varint");
  ExpectInvalid(Key(1, 2) + Varint(100) + "short", "length 100 runs past the end");
  ExpectInvalid(Key(1, 7), "invalid wire type 7");
  ExpectInvalid(Key(0, 0) + Varint(1), "invalid field number 0");
  ExpectInvalid(Key(9, 4), "end of group 9 without a start");
  ExpectInvalid(Key(9, 3) + VarintField(1, 1), "group 9 is never closed");
  ExpectInvalid(Key(9, 3) + Key(8, 4), "end of group 8 inside group 9");
  ExpectInvalid(Key(1001, 1) + "1234", "truncated 64-bit value");
  ExpectInvalid(VarintField(1, 5), "field 1 has wire type varint, expected length-delimited");
  ExpectInvalid(BytesField(1, VarintField(1, 3)), "ModelProto.pieces[0]");
}

TEST(SentencePieceTokenizerTest, InconsistentVocabularyIsInvalidArgument) {
  ExpectInvalid(BytesField(2, VarintField(3, 2)), "empty vocabulary");
  ExpectInvalid(Piece("<unk>", 0, 2), "no trainer_spec");
  TinyModel model;
  model.extra_trainer_fields = VarintField(41, 42);
  ExpectInvalid(model.Serialize(), "trainer_spec.bos_id 42 is out of range for 9 pieces");
  model = {};
  model.extra_pieces = Piece("a", 0, 1);
  ExpectInvalid(model.Serialize(), "piece \"a\" (id 9) is defined twice");
  model.extra_pieces = Piece("q", 0, 9);
  ExpectInvalid(model.Serialize(), "unknown type 9");
  model.extra_pieces = Piece("", 0, 1);
  ExpectInvalid(model.Serialize(), "piece 9 is empty");
  model.extra_pieces = Piece("<unk2>", 0, 2);
  ExpectInvalid(model.Serialize(), "two unknown pieces");
  model.extra_pieces = Piece("<0x41>", 0, 6);
  ExpectInvalid(model.Serialize(), "byte_fallback is off");
  model.extra_trainer_fields = VarintField(35, 1);
  ExpectInvalid(model.Serialize(), "piece <0x00> is missing");
  ExpectInvalid(BytesField(2, VarintField(3, 2)) + Piece("a", 0, 1) + Piece("b", 0, 1) + Piece("c", 0, 1),
                "no unknown piece");
}

TEST(SentencePieceTokenizerTest, TruncatedAndGarbageFilesFailCleanly) {
  const std::filesystem::path dir = FixtureDir();
  ASSERT_FALSE(dir.empty());
  const std::string bytes = ReadBytes(dir / "tokenizer.model");
  ASSERT_GT(bytes.size(), 1000u);
  ExpectInvalid(bytes.substr(0, bytes.size() - 1), "runs past the end");
  // Cutting anywhere must never crash; a cut between two top-level fields can leave a loadable model.
  for (size_t size = 0; size < bytes.size(); size += 7) {
    absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
        SentencePieceTokenizer::FromBytes(std::string_view(bytes).substr(0, size), "cut.model");
    if (!tokenizer.ok()) {
      EXPECT_THAT(Message(tokenizer.status()), HasSubstr("cut.model")) << size;
    }
  }
  std::mt19937 random(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::string garbage(1 + random() % 2000, '\0');
    for (char& c : garbage) c = static_cast<char>(random());
    absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
        SentencePieceTokenizer::FromBytes(garbage, "garbage.model");
    ASSERT_FALSE(tokenizer.ok());
    EXPECT_THAT(Message(tokenizer.status()), HasSubstr("garbage.model"));
  }
}

void ExpectUnimplemented(const absl::Status& status, std::string_view file, std::string_view detail) {
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
  EXPECT_THAT(Message(status), HasSubstr(std::string(file)));
  EXPECT_THAT(Message(status), HasSubstr(std::string(detail)));
}

TEST(SentencePieceTokenizerTest, UnsupportedModelsAreUnimplemented) {
  const std::filesystem::path dir = FixtureDir();
  ASSERT_FALSE(dir.empty());
  const std::filesystem::path unigram_file = dir / "tokenizer_unigram.model";
  ExpectUnimplemented(SentencePieceTokenizer::Load(unigram_file).status(), unigram_file.string(),
                      "model_type UNIGRAM is not supported");

  TinyModel model;
  model.model_type = 4;
  ExpectUnimplemented(FromTiny(model).status(), "tiny.model", "model_type CHAR");
  model = {};
  model.normalizer_fields = BytesField(1, "nmt_nfkc") + BytesField(2, "\x04\0\0\0rule");
  ExpectUnimplemented(FromTiny(model).status(), "tiny.model", "normalizer \"nmt_nfkc\"");
  model = {};
  model.extra_trainer_fields = VarintField(24, 1);
  ExpectUnimplemented(FromTiny(model).status(), "tiny.model", "treat_whitespace_as_suffix");
}

TEST(SentencePieceTokenizerTest, MissingFileIsNotFound) {
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
      SentencePieceTokenizer::Load("/nonexistent/tokenizer.model");
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(tokenizer.status()), HasSubstr("/nonexistent/tokenizer.model"));
}

// --- LoadTokenizer ---

// An empty folder for one test, removed afterwards.
class ScopedDir {
 public:
  explicit ScopedDir(const std::string& name)
      : path_(std::filesystem::path(::testing::TempDir()) /
              absl::StrCat("agora_tokenizer_test_", name, "_", getpid())) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScopedDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

TEST(LoadTokenizerTest, PicksTokenizerModel) {
  const std::filesystem::path fixtures = FixtureDir();
  ASSERT_FALSE(fixtures.empty());
  const ScopedDir scoped("with_model");
  const std::filesystem::path& dir = scoped.path();
  std::filesystem::copy_file(fixtures / "tokenizer.model", dir / "tokenizer.model");
  std::ofstream(dir / "tokenizer.json") << "{}";
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(dir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->vocab_size(), 800);
}

TEST(LoadTokenizerTest, ATokenizerLargerThanTheModelsVocabularyIsRefused) {
  const std::filesystem::path fixtures = FixtureDir();
  ASSERT_FALSE(fixtures.empty());
  const ScopedDir scoped("too_many_pieces");
  std::filesystem::copy_file(fixtures / "tokenizer.model", scoped.path() / "tokenizer.model");
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(scoped.path());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_TRUE(CheckTokenizerFitsModel(**tokenizer, 800, scoped.path()).ok());
  EXPECT_TRUE(CheckTokenizerFitsModel(**tokenizer, 32000, scoped.path()).ok());  // a padded embedding is fine
  const absl::Status status = CheckTokenizerFitsModel(**tokenizer, 3, scoped.path());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(status.message()), scoped.path().string() +
                                               ": the tokenizer has 800 pieces but config.json's vocab_size is 3: "
                                               "its ids would fall outside the model's embedding");
}

// tokenizer.json alone is read as byte-level BPE (tests/bpe_tokenizer_test.cpp); other kinds are refused.
TEST(LoadTokenizerTest, TokenizerJsonOfAnotherKindIsUnimplemented) {
  const ScopedDir scoped("json_only");
  const std::filesystem::path& dir = scoped.path();
  std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "Unigram"}, "pre_tokenizer": null})";
  ExpectUnimplemented(LoadTokenizer(dir).status(), (dir / "tokenizer.json").string(), "model type \"Unigram\"");
}

TEST(LoadTokenizerTest, FolderWithoutTokenizerIsNotFound) {
  const ScopedDir scoped("empty");
  const std::filesystem::path& dir = scoped.path();
  const absl::Status status = LoadTokenizer(dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(status), HasSubstr(dir.string()));
}

}  // namespace
}  // namespace agora
