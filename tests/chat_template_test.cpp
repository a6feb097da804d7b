// Tests of the chat templates (data/chat_template.h) on the Llama-2-style fixture tokenizer.
//
// AGORA_CHAT_FIXTURES names the folder tests/oracle/make_chat_fixtures.py wrote: tokenizer.model and
// chat_cases.json. There the llama2 ids are those of Meta's reference chat_completion encoded by the official
// sentencepiece library, with labels derived from Meta's ids alone; the plain ids are the header's spec computed in
// python. Agora's ids and labels must equal them exactly. The other tests need no oracle: llama3 on a tokenizer
// without its special tokens (refused) and with them (the header's rendering), llama2 role order, empty
// conversations, template names, control-token text inside contents, and a printed table of the tokens one example
// trains.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/chat_template.h"
#include "data/jsonl_dataset.h"
#include "data/sentencepiece_tokenizer.h"
#include "data/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixture_dir.h"
#include "util/read_file.h"

namespace agora {
namespace {

using ::testing::HasSubstr;

std::string MessageOf(const absl::Status& status) { return std::string(status.message()); }

// A piece for a terminal: UTF-8 kept as is, ASCII control characters as \xNN.
std::string Printable(std::string_view piece) {
  std::string out;
  for (char ch : piece) {
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += {'\\', 'x', kHex[(ch >> 4) & 0xf], kHex[ch & 0xf]};
    } else {
      out += ch;
    }
  }
  return out;
}

std::filesystem::path FixtureDir() { return testing::FixtureDir("AGORA_CHAT_FIXTURES"); }

std::string ReadBytes(const std::filesystem::path& path) {
  absl::StatusOr<std::string> bytes = ReadFile(path);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : "";
}

Conversation Make(std::vector<std::pair<std::string, std::string>> turns) {
  Conversation conversation;
  for (auto& [role, content] : turns) conversation.messages.push_back({std::move(role), std::move(content)});
  return conversation;
}

Conversation FromJson(const nlohmann::json& messages) {
  Conversation conversation;
  for (const nlohmann::json& m : messages)
    conversation.messages.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
  return conversation;
}

class ChatTemplateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::filesystem::path dir = FixtureDir();
    ASSERT_FALSE(dir.empty());
    absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
        SentencePieceTokenizer::Load(dir / "tokenizer.model");
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = *std::move(tokenizer);
    std::ifstream in(dir / "chat_cases.json");
    ASSERT_TRUE(in) << "cannot read " << (dir / "chat_cases.json");
    oracle_ = nlohmann::json::parse(in);
    // The ids the oracle used for BOS/EOS are the tokenizer's (1 and 2, Llama-2 style).
    ASSERT_EQ(tokenizer_->bos_id(), oracle_.at("bos_id").get<int32_t>());
    ASSERT_EQ(tokenizer_->eos_id(), oracle_.at("eos_id").get<int32_t>());
  }

  const nlohmann::json& Cases() const { return oracle_.at("cases"); }

  const nlohmann::json& Case(std::string_view name) const {
    for (const nlohmann::json& c : Cases())
      if (c.at("name") == name) return c;
    ADD_FAILURE() << "chat_cases.json has no case " << name;
    static const nlohmann::json kEmpty = nlohmann::json::object();
    return kEmpty;
  }

  std::vector<std::string> Pieces(const std::vector<int32_t>& ids) const {
    std::vector<std::string> pieces;
    for (int32_t id : ids) pieces.push_back(tokenizer_->IdToPiece(id));
    return pieces;
  }

  std::unique_ptr<SentencePieceTokenizer> tokenizer_;
  nlohmann::json oracle_;
};

// --- against the oracle ---------------------------------------------------------------------------------------

struct OracleKeys {
  ChatTemplateKind kind;
  const char* sample;  // {ids, labels} of TokenizeConversation
  const char* prompt;  // ids of TokenizePrompt (conversations ending with a user turn)
  int min_samples;     // how many cases must be compared, so that exclusions cannot empty the check
  int min_prompts;
};
constexpr OracleKeys kOracleKeys[] = {
    {ChatTemplateKind::kLlama2, "llama2", "llama2_prompt", 13, 3},
    {ChatTemplateKind::kPlain, "plain", "plain_prompt", 16, 3},
};

TEST_F(ChatTemplateTest, IdsAndLabelsEqualTheOracle) {
  for (const OracleKeys& keys : kOracleKeys) {
    int compared = 0;
    for (const nlohmann::json& c : Cases()) {
      if (!c.contains(keys.sample)) continue;
      SCOPED_TRACE(ChatTemplateName(keys.kind) + " / " + c.at("name").get<std::string>());
      absl::StatusOr<TokenizedSample> sample = TokenizeConversation(keys.kind, FromJson(c.at("messages")), *tokenizer_);
      ASSERT_TRUE(sample.ok()) << sample.status();
      const auto want_ids = c.at(keys.sample).at("ids").get<std::vector<int32_t>>();
      EXPECT_EQ(sample->ids, want_ids) << "\n   got pieces: " << ::testing::PrintToString(Pieces(sample->ids))
                                       << "\n  want pieces: " << ::testing::PrintToString(Pieces(want_ids));
      EXPECT_EQ(sample->labels, c.at(keys.sample).at("labels").get<std::vector<int32_t>>());
      ++compared;
    }
    EXPECT_GE(compared, keys.min_samples) << ChatTemplateName(keys.kind);
  }
}

TEST_F(ChatTemplateTest, GenerationPromptsEqualTheOracle) {
  for (const OracleKeys& keys : kOracleKeys) {
    int compared = 0;
    for (const nlohmann::json& c : Cases()) {
      if (!c.contains(keys.prompt)) continue;
      SCOPED_TRACE(ChatTemplateName(keys.kind) + " / " + c.at("name").get<std::string>());
      absl::StatusOr<std::vector<int32_t>> prompt = TokenizePrompt(keys.kind, FromJson(c.at("messages")), *tokenizer_);
      ASSERT_TRUE(prompt.ok()) << prompt.status();
      EXPECT_EQ(*prompt, c.at(keys.prompt).get<std::vector<int32_t>>());
      ++compared;
    }
    EXPECT_GE(compared, keys.min_prompts) << ChatTemplateName(keys.kind);
  }
}

// The cases the oracle could not compare with Meta's ids (it records why). Another one appearing means the
// tokenizer or the rendering changed and the Meta comparison lost coverage.
TEST_F(ChatTemplateTest, OnlyTheKnownCasesAreExcludedFromTheMetaComparison) {
  std::set<std::string> excluded;
  for (const nlohmann::json& e : oracle_.at("llama2_excluded")) {
    excluded.insert(e.at("name").get<std::string>());
    EXPECT_THAT(e.at("reason").get<std::string>(), ::testing::Not(::testing::IsEmpty()));
  }
  EXPECT_EQ(excluded, (std::set<std::string>{"empty_user", "whitespace_only_user", "nbsp_around_user"}));
}

// Every case, the excluded ones included, both templates: the trained tokens are exactly each answer's
// sentencepiece pieces as the oracle recorded them ("{answer} " for llama2, "{answer}" for plain), each followed by
// </s>, and a trained token's label is its id.
TEST_F(ChatTemplateTest, TrainedTokensAreTheAnswersAndEos) {
  for (const OracleKeys& keys : kOracleKeys) {
    for (const nlohmann::json& c : Cases()) {
      SCOPED_TRACE(ChatTemplateName(keys.kind) + " / " + c.at("name").get<std::string>());
      absl::StatusOr<TokenizedSample> sample = TokenizeConversation(keys.kind, FromJson(c.at("messages")), *tokenizer_);
      ASSERT_TRUE(sample.ok()) << sample.status();
      ASSERT_EQ(sample->ids.size(), sample->labels.size());
      std::vector<std::string> trained;
      for (size_t i = 0; i < sample->ids.size(); ++i) {
        if (sample->labels[i] == kIgnoreLabel) continue;
        EXPECT_EQ(sample->labels[i], sample->ids[i]) << "at " << i;
        trained.push_back(tokenizer_->IdToPiece(sample->ids[i]));
      }
      std::vector<std::string> want;
      for (const nlohmann::json& answer : c.at("answer_pieces").at(keys.sample)) {
        for (const std::string& piece : answer.get<std::vector<std::string>>()) want.push_back(piece);
        want.push_back("</s>");
      }
      EXPECT_EQ(trained, want);
    }
  }
}

// For a reader of the test log: shows, token by token, what one llama2 example trains ("T") and ignores (".").
TEST_F(ChatTemplateTest, PrintsWhichTokensOneExampleTrains) {
  const nlohmann::json& c = Case("system_multi_turn");
  ASSERT_TRUE(c.contains("messages"));
  absl::StatusOr<TokenizedSample> sample =
      TokenizeConversation(ChatTemplateKind::kLlama2, FromJson(c.at("messages")), *tokenizer_);
  ASSERT_TRUE(sample.ok()) << sample.status();
  std::cout << "llama2 rendering of case system_multi_turn (T = trained, . = label " << kIgnoreLabel << "):\n";
  std::vector<std::string> trained;
  for (size_t i = 0; i < sample->ids.size(); ++i) {
    const bool is_trained = sample->labels[i] != kIgnoreLabel;
    const std::string piece = tokenizer_->IdToPiece(sample->ids[i]);
    std::cout << std::setw(4) << i << std::setw(6) << sample->ids[i] << "  " << (is_trained ? "T" : ".") << "  "
              << Printable(piece) << "\n";
    if (is_trained) trained.push_back(piece);
  }
  std::cout << std::flush;
  // Two answers: "Hello! How can I help?" and "1, 2, 3, 4, 5.", each as "{answer} " then </s>.
  std::vector<std::string> want;
  for (const nlohmann::json& answer : c.at("answer_pieces").at("llama2")) {
    for (const std::string& piece : answer.get<std::vector<std::string>>()) want.push_back(piece);
    want.push_back("</s>");
  }
  ASSERT_EQ(c.at("answer_pieces").at("llama2").size(), 2u);
  EXPECT_EQ(trained, want);
  EXPECT_EQ(want.front(), "\u2581Hello");
  // The sample starts with an ignored <s> and ends with a trained </s>.
  EXPECT_EQ(sample->ids.front(), *tokenizer_->bos_id());
  EXPECT_EQ(sample->labels.front(), kIgnoreLabel);
  EXPECT_EQ(sample->labels.back(), *tokenizer_->eos_id());
}

// --- without the oracle -----------------------------------------------------------------------------------------

TEST(ChatTemplateNameTest, ParsesTheFourNamesAndRejectsOthers) {
  const std::pair<const char*, ChatTemplateKind> good[] = {{"llama2", ChatTemplateKind::kLlama2},
                                                           {"llama3", ChatTemplateKind::kLlama3},
                                                           {"plain", ChatTemplateKind::kPlain},
                                                           {"vicuna", ChatTemplateKind::kVicuna}};
  for (const auto& [name, kind] : good) {
    absl::StatusOr<ChatTemplateKind> parsed = ParseChatTemplateKind(name);
    ASSERT_TRUE(parsed.ok()) << name << ": " << parsed.status();
    EXPECT_EQ(*parsed, kind);
    EXPECT_EQ(ChatTemplateName(kind), name);
  }
  for (const char* bad : {"", "Llama2", "llama-2", "llama", "chatml", "plain ", "llama2\n"}) {
    absl::StatusOr<ChatTemplateKind> parsed = ParseChatTemplateKind(bad);
    ASSERT_FALSE(parsed.ok()) << ::testing::PrintToString(std::string(bad));
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(MessageOf(parsed.status()), HasSubstr("\"" + std::string(bad) + "\""));
    EXPECT_THAT(MessageOf(parsed.status()), HasSubstr("llama2, llama3, plain or vicuna"));
  }
}

TEST_F(ChatTemplateTest, Llama3RefusesATokenizerWithoutItsSpecialTokens) {
  EXPECT_TRUE(CheckChatTemplate(ChatTemplateKind::kLlama2, *tokenizer_).ok());
  EXPECT_TRUE(CheckChatTemplate(ChatTemplateKind::kPlain, *tokenizer_).ok());
  const Conversation conversation = Make({{"user", "hi"}, {"assistant", "hello"}});
  const Conversation prompt = Make({{"user", "hi"}});
  const absl::Status statuses[] = {
      CheckChatTemplate(ChatTemplateKind::kLlama3, *tokenizer_),
      TokenizeConversation(ChatTemplateKind::kLlama3, conversation, *tokenizer_).status(),
      TokenizePrompt(ChatTemplateKind::kLlama3, prompt, *tokenizer_).status(),
  };
  for (const absl::Status& status : statuses) {
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
    // The first missing one is named, with the template.
    EXPECT_THAT(MessageOf(status), HasSubstr("<|begin_of_text|>"));
    EXPECT_THAT(MessageOf(status), HasSubstr("llama3"));
  }
}

struct RoleOrderCase {
  std::vector<std::pair<std::string, std::string>> turns;
  std::string expected_detail;
};

TEST_F(ChatTemplateTest, Llama2RejectsRolesOutOfOrderNamingTheMessage) {
  const RoleOrderCase cases[] = {
      {{{"assistant", "hello"}, {"user", "hi"}}, "message 0 has role \"assistant\", expected \"user\""},
      {{{"user", "a"}, {"user", "b"}}, "message 1 has role \"user\", expected \"assistant\""},
      {{{"system", "s"}, {"assistant", "a"}}, "message 1 has role \"assistant\", expected \"user\""},
      {{{"user", "a"}, {"system", "s"}}, "message 1 has role \"system\", expected \"assistant\""},
      {{{"user", "a"}, {"assistant", "b"}, {"assistant", "c"}}, "message 2 has role \"assistant\", expected \"user\""},
      {{{"system", "s"}, {"user", "a"}, {"assistant", "b"}, {"user", "c"}, {"user", "d"}},
       "message 4 has role \"user\", expected \"assistant\""},
      {{{"system", "s"}, {"system", "t"}, {"user", "a"}}, "message 1 has role \"system\", expected \"user\""},
      {{{"system", "s"}}, "a system message without a user turn"},
  };
  for (const RoleOrderCase& c : cases) {
    const Conversation conversation = Make(c.turns);
    SCOPED_TRACE(c.expected_detail);
    absl::StatusOr<TokenizedSample> sample = TokenizeConversation(ChatTemplateKind::kLlama2, conversation, *tokenizer_);
    ASSERT_FALSE(sample.ok());
    EXPECT_EQ(sample.status().code(), absl::StatusCode::kInvalidArgument) << sample.status();
    EXPECT_THAT(MessageOf(sample.status()), HasSubstr(c.expected_detail));
    if (conversation.messages.back().role == "user" && conversation.messages.size() > 1) {
      absl::StatusOr<std::vector<int32_t>> prompt =
          TokenizePrompt(ChatTemplateKind::kLlama2, conversation, *tokenizer_);
      ASSERT_FALSE(prompt.ok());
      EXPECT_EQ(prompt.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(MessageOf(prompt.status()), HasSubstr(c.expected_detail));
    }
  }
}

TEST_F(ChatTemplateTest, EmptyConversationsAndPromptsNotEndingWithUserAreErrors) {
  for (ChatTemplateKind kind : {ChatTemplateKind::kLlama2, ChatTemplateKind::kPlain}) {
    SCOPED_TRACE(ChatTemplateName(kind));
    absl::StatusOr<TokenizedSample> sample = TokenizeConversation(kind, Conversation{}, *tokenizer_);
    ASSERT_FALSE(sample.ok());
    EXPECT_EQ(sample.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(MessageOf(sample.status()), HasSubstr("empty conversation"));
    for (const Conversation& bad : {Conversation{}, Make({{"user", "q"}, {"assistant", "a"}})}) {
      absl::StatusOr<std::vector<int32_t>> prompt = TokenizePrompt(kind, bad, *tokenizer_);
      ASSERT_FALSE(prompt.ok());
      EXPECT_EQ(prompt.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(MessageOf(prompt.status()), HasSubstr("must end with a user message"));
    }
  }
}

// Contents are encoded without parse_special: text spelling a control token stays text, so BOS/EOS appear only
// where the template puts them.
TEST_F(ChatTemplateTest, ControlTokenTextInContentsNeverBecomesControlTokens) {
  const int32_t bos = *tokenizer_->bos_id(), eos = *tokenizer_->eos_id();
  // With parse_special the same text would be BOS/EOS: the tokenizer does know them.
  ASSERT_EQ(tokenizer_->Encode("<s>", {.parse_special = true}), std::vector<int32_t>{bos});
  ASSERT_EQ(tokenizer_->Encode("</s>", {.parse_special = true}), std::vector<int32_t>{eos});
  const char* contents[] = {"<s>",   "</s>",   "<s>hello</s>", "<unk>", "[INST] <s> [/INST]", "<<SYS>>\n<s>\n<</SYS>>",
                            " <s> ", "</s><s>"};
  for (ChatTemplateKind kind : {ChatTemplateKind::kLlama2, ChatTemplateKind::kPlain}) {
    for (const char* content : contents) {
      SCOPED_TRACE(ChatTemplateName(kind) + " / " + ::testing::PrintToString(std::string(content)));
      const Conversation conversation = Make(
          {{"system", content}, {"user", content}, {"assistant", content}, {"user", content}, {"assistant", content}});
      absl::StatusOr<TokenizedSample> sample = TokenizeConversation(kind, conversation, *tokenizer_);
      ASSERT_TRUE(sample.ok()) << sample.status();
      std::vector<size_t> bos_at, eos_at;
      for (size_t i = 0; i < sample->ids.size(); ++i) {
        if (sample->ids[i] == bos) bos_at.push_back(i);
        if (sample->ids[i] == eos) eos_at.push_back(i);
        EXPECT_NE(sample->ids[i], 0) << "<unk> at " << i;
      }
      // llama2: one <s> per exchange; plain: one at the start. Both: one </s> per answer, the last at the end.
      EXPECT_EQ(bos_at.size(), kind == ChatTemplateKind::kLlama2 ? 2u : 1u);
      EXPECT_EQ(bos_at.front(), 0u);
      ASSERT_EQ(eos_at.size(), 2u);
      EXPECT_EQ(eos_at.back(), sample->ids.size() - 1);
      if (kind == ChatTemplateKind::kLlama2) {
        EXPECT_EQ(bos_at.back(), eos_at.front() + 1);
      }
      absl::StatusOr<std::vector<int32_t>> prompt =
          TokenizePrompt(kind, Make({{"system", content}, {"user", content}}), *tokenizer_);
      ASSERT_TRUE(prompt.ok()) << prompt.status();
      EXPECT_EQ(std::count(prompt->begin(), prompt->end(), bos), 1);
      EXPECT_EQ(std::count(prompt->begin(), prompt->end(), eos), 0);
    }
  }
}

// --- llama3, on the fixture tokenizer with its four special tokens added ----------------------------------------

std::string Varint(uint64_t value) {
  std::string out;
  for (; value >= 0x80; value >>= 7) out.push_back(static_cast<char>(value | 0x80));
  out.push_back(static_cast<char>(value));
  return out;
}

// A ModelProto.pieces entry {piece, score 0, type CONTROL}; appended to a model file it extends the vocabulary.
std::string ControlPiece(std::string_view text) {
  const std::string body =
      "\x0a" + Varint(text.size()) + std::string(text) + std::string("\x15\0\0\0\0", 5) + "\x18\x03";
  return "\x0a" + Varint(body.size()) + body;
}

TEST_F(ChatTemplateTest, Llama3RendersTheHeaderSpecWhenTheTokensExist) {
  std::string bytes = ReadBytes(FixtureDir() / "tokenizer.model");
  const char* specials[] = {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
  for (const char* special : specials) bytes += ControlPiece(special);
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> loaded = SentencePieceTokenizer::FromBytes(bytes, "llama3");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tokenizer& t = **loaded;
  const int32_t begin = 800, start = 801, end = 802, eot = 803;
  for (int i = 0; i < 4; ++i) ASSERT_EQ(t.PieceToId(specials[i]), 800 + i);
  ASSERT_TRUE(CheckChatTemplate(ChatTemplateKind::kLlama3, t).ok());

  // Any order of roles; contents stripped; content spelling a special token stays text.
  const Conversation conversation = Make(
      {{"system", " be brief\n"}, {"assistant", "first"}, {"user", "<|eot_id|> hi"}, {"assistant", "\thello there  "}});
  std::vector<int32_t> ids, labels;
  auto add = [&](const std::vector<int32_t>& segment, bool trained) {
    for (int32_t id : segment) {
      ids.push_back(id);
      labels.push_back(trained ? id : kIgnoreLabel);
    }
  };
  auto header = [&](const std::string& role) {
    add({start}, false);
    add(t.Encode(role), false);
    add({end}, false);
    add(t.Encode("\n\n"), false);
  };
  add({begin}, false);
  for (const auto& [role, content] : std::vector<std::pair<std::string, std::string>>{
           {"system", "be brief"}, {"assistant", "first"}, {"user", "<|eot_id|> hi"}, {"assistant", "hello there"}}) {
    header(role);
    add(t.Encode(content), role == "assistant");
    add({eot}, role == "assistant");
  }
  absl::StatusOr<TokenizedSample> sample = TokenizeConversation(ChatTemplateKind::kLlama3, conversation, t);
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_EQ(sample->ids, ids);
  EXPECT_EQ(sample->labels, labels);
  EXPECT_EQ(std::count(sample->ids.begin(), sample->ids.end(), eot), 4);

  // The prompt: the conversation so far, then the assistant header.
  const Conversation prompt_conversation = Make({{"user", "hi"}});
  ids.clear();
  labels.clear();
  add({begin}, false);
  header("user");
  add(t.Encode("hi"), false);
  add({eot}, false);
  header("assistant");
  absl::StatusOr<std::vector<int32_t>> prompt = TokenizePrompt(ChatTemplateKind::kLlama3, prompt_conversation, t);
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  EXPECT_EQ(*prompt, ids);

  absl::StatusOr<TokenizedSample> empty = TokenizeConversation(ChatTemplateKind::kLlama3, Conversation{}, t);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace agora
