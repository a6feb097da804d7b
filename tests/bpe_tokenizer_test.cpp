// The tokenizer.json byte-level BPE reader against the `tokenizers` library (tests/oracle/make_bpe_fixtures.py
// trains a Llama-3-style tokenizer, with ignore_merges on and off): ids of ~200 tricky strings with added tokens
// matched in the text, ids with the post-processor's BOS, decoding (special tokens dropped, invalid UTF-8 repaired
// as the library does), round trips; the factory picks tokenizer.json when a folder has no tokenizer.model; the
// llama3 chat template renders with its special tokens; unsupported files are refused with the file named.
#include "data/bpe_tokenizer.h"
#include "data/load_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "data/chat_template.h"
#include "tests/fixture_dir.h"
#include "util/read_file.h"

namespace agora {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

fs::path Fixtures() { return testing::FixtureDir("AGORA_BPE_FIXTURES"); }

nlohmann::json ReadJson(const fs::path& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  EXPECT_TRUE(text.ok()) << text.status();
  return nlohmann::json::parse(text.ok() ? *text : "{}");
}

class BpeOracle : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto t = BpeTokenizer::Load(Fixtures() / (GetParam() + ".json"));
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = std::move(*t);
    cases_ = ReadJson(Fixtures() / (GetParam() + "_cases.json"));
  }
  std::unique_ptr<BpeTokenizer> tokenizer_;
  nlohmann::json cases_;
};

TEST_P(BpeOracle, IdsEqualTheTokenizersLibrary) {
  ASSERT_GT(cases_["cases"].size(), 100u);
  int mismatches = 0;
  for (const auto& c : cases_["cases"]) {
    const std::string text = c["text"];
    const std::vector<int32_t> ids = tokenizer_->Encode(text, {.parse_special = true});
    const std::vector<int32_t> expected = c["ids"];
    if (ids != expected && ++mismatches <= 10) ADD_FAILURE() << "text " << nlohmann::json(text).dump();
    EXPECT_EQ(ids, expected) << nlohmann::json(text).dump();
    EXPECT_EQ(tokenizer_->Encode(text, {.add_bos = true, .parse_special = true}), c["ids_with_bos"].get<std::vector<int32_t>>());
  }
}

TEST_P(BpeOracle, DecodingEqualsTheLibraryAndRoundTrips) {
  for (const auto& c : cases_["cases"]) {
    const std::vector<int32_t> ids = c["ids"];
    EXPECT_EQ(tokenizer_->Decode(ids), c["decoded_skip_special"].get<std::string>()) << c["text"].dump();
  }
  for (const auto& c : cases_["decode_cases"]) {
    EXPECT_EQ(tokenizer_->Decode(c["ids"].get<std::vector<int32_t>>()), c["decoded_skip_special"].get<std::string>())
        << c["ids"].dump();
  }
  // Without special tokens in the text, decode(encode(x)) == x.
  for (const std::string text : {"hello world", "  two  spaces\n\nand lines", "café 日本語 🎉 12345"})
    EXPECT_EQ(tokenizer_->Decode(tokenizer_->Encode(text)), text);
}

TEST_P(BpeOracle, SpecialTokensAreTextUnlessParseSpecial) {
  const int32_t eot = cases_["special_tokens"]["<|eot_id|>"];
  EXPECT_EQ(tokenizer_->PieceToId("<|eot_id|>"), eot);
  const std::vector<int32_t> as_text = tokenizer_->Encode("a<|eot_id|>b");
  EXPECT_EQ(std::count(as_text.begin(), as_text.end(), eot), 0) << "user text must not become control tokens";
  const std::vector<int32_t> parsed = tokenizer_->Encode("a<|eot_id|>b", {.parse_special = true});
  EXPECT_EQ(std::count(parsed.begin(), parsed.end(), eot), 1);
  EXPECT_EQ(tokenizer_->bos_id(), cases_["special_tokens"]["<|begin_of_text|>"].get<int32_t>());
}

TEST_P(BpeOracle, MergesWrittenAsStringsReadTheSame) {
  // Older files (and Meta's Llama-3 tokenizer.json) write merges as "left right" strings, newer ones as pairs.
  nlohmann::json j = ReadJson(Fixtures() / (GetParam() + ".json"));
  for (auto& merge : j["model"]["merges"])
    if (merge.is_array()) merge = merge[0].get<std::string>() + " " + merge[1].get<std::string>();
  auto strings = BpeTokenizer::FromJson(j.dump(), "strings.json");
  ASSERT_TRUE(strings.ok()) << strings.status();
  for (const auto& c : cases_["cases"])
    EXPECT_EQ((*strings)->Encode(c["text"].get<std::string>(), {.parse_special = true}),
              c["ids"].get<std::vector<int32_t>>());
}

INSTANTIATE_TEST_SUITE_P(TwoFiles, BpeOracle, ::testing::Values("tokenizer", "tokenizer_merges"));

TEST(BpeTokenizerFactory, ModelFolderWithOnlyTokenizerJsonGetsTheBpe) {
  auto t = LoadTokenizer(Fixtures() / "llama3_bpe_model");
  ASSERT_TRUE(t.ok()) << t.status();
  const nlohmann::json cases = ReadJson(Fixtures() / "tokenizer_cases.json");
  EXPECT_EQ((*t)->bos_id(), cases["special_tokens"]["<|begin_of_text|>"].get<int32_t>());
  // tokenizer_config.json's eos_token.
  const std::string eos = ReadJson(Fixtures() / "llama3_bpe_model" / "tokenizer_config.json")["eos_token"];
  EXPECT_EQ((*t)->eos_id(), cases["special_tokens"][eos].get<int32_t>());
  // The llama3 chat template finds its special tokens and trains the answer and <|eot_id|>.
  auto sample = TokenizeConversation(ChatTemplateKind::kLlama3,
                                     Conversation{{{"user", "hi there"}, {"assistant", "hello!"}}}, **t);
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_EQ(sample->ids.front(), cases["special_tokens"]["<|begin_of_text|>"].get<int32_t>());
  EXPECT_EQ(sample->ids.back(), cases["special_tokens"]["<|eot_id|>"].get<int32_t>());
  std::vector<int32_t> trained;
  for (size_t i = 0; i < sample->ids.size(); ++i)
    if (sample->labels[i] != kIgnoreLabel) trained.push_back(sample->ids[i]);
  std::vector<int32_t> expected = (*t)->Encode("hello!");
  expected.push_back(cases["special_tokens"]["<|eot_id|>"]);
  EXPECT_EQ(trained, expected);
}

TEST(BpeTokenizerErrors, UnsupportedFilesAreRefusedNamingTheFile) {
  nlohmann::json j = ReadJson(Fixtures() / "tokenizer.json");
  struct Case {
    std::string what;
    std::function<void(nlohmann::json&)> edit;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"unigram", [](nlohmann::json& x) { x["model"]["type"] = "Unigram"; }, "model type \"Unigram\""},
           {"normalizer", [](nlohmann::json& x) { x["normalizer"] = {{"type", "NFC"}}; }, "a normalizer is set"},
           {"byte fallback", [](nlohmann::json& x) { x["model"]["byte_fallback"] = true; }, "byte_fallback"},
           {"lstrip", [](nlohmann::json& x) { x["added_tokens"][0]["lstrip"] = true; }, "sets lstrip"},
           {"bad regex", [](nlohmann::json& x) { x["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(";},
            "regex does not compile"},
           {"missing byte", [](nlohmann::json& x) { x["model"]["vocab"].erase("!"); }, "lacks the byte-level token"},
           // Found by fuzzing: a float id past int32 was cast (UB), a huge one sized the piece table.
           {"float id", [](nlohmann::json& x) { x["model"]["vocab"]["!"] = 1e300; },
            "token \"!\" has id 1e+300; expected an integer in [0, "},
           {"id past the vocab", [](nlohmann::json& x) { x["added_tokens"][0]["id"] = 2147483647; },
            "has id 2147483647; expected an integer in [0, "},
           {"negative added id", [](nlohmann::json& x) { x["added_tokens"][0]["id"] = -5; }, "has id -5"},
       }) {
    nlohmann::json edited = j;
    c.edit(edited);
    auto t = BpeTokenizer::FromJson(edited.dump(), "edited/tokenizer.json");
    ASSERT_FALSE(t.ok()) << c.what;
    EXPECT_THAT(std::string(t.status().message()), HasSubstr("edited/tokenizer.json")) << c.what;
    EXPECT_THAT(std::string(t.status().message()), HasSubstr(c.message)) << c.what;
  }
}

// A special token whose id lies past config.json's vocab_size (a Llama-3 tokenizer.json beside a model cut to
// 128000 rows): the tokenizer's size counts the added tokens, so the model load refuses it before any id is used.
TEST(BpeTokenizerErrors, SpecialIdPastTheModelsVocabularyIsRefusedAtLoad) {
  nlohmann::json j = ReadJson(Fixtures() / "tokenizer.json");
  int64_t top = 0;  // the largest id the file gives
  for (const auto& [piece, id] : j["model"]["vocab"].items()) top = std::max(top, id.get<int64_t>());
  for (const auto& added : j["added_tokens"]) top = std::max(top, added["id"].get<int64_t>());
  j["added_tokens"][0]["id"] = top + 10;
  auto t = BpeTokenizer::FromJson(j.dump(), "edited/tokenizer.json");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->vocab_size(), top + 11);
  EXPECT_TRUE(CheckTokenizerFitsModel(**t, top + 11, "model_dir").ok());
  const absl::Status status = CheckTokenizerFitsModel(**t, top + 1, "model_dir");
  EXPECT_EQ(std::string(status.message()),
            absl::StrCat("model_dir: the tokenizer has ", top + 11, " pieces but config.json's vocab_size is ",
                         top + 1, ": its ids would fall outside the model's embedding"));
}

}  // namespace
}  // namespace agora
