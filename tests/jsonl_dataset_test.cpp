// JsonlDataset: both record formats, field maps, offsets, malformed lines (error and skip), Get re-reading the file.
#include "data/jsonl_dataset.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace agora {

// Readable failure output (found by argument-dependent lookup, so it lives in agora, not the anonymous namespace).
void PrintTo(const Conversation& conversation, std::ostream* os) {
  *os << "{";
  for (const Message& m : conversation.messages) *os << " " << m.role << ": " << ::testing::PrintToString(m.content);
  *os << " }";
}

namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

Conversation Conv(std::vector<Message> messages) { return {std::move(messages)}; }

std::string Text(const absl::Status& status) { return std::string(status.message()); }

// Every record of `dataset`, in order.
std::vector<Conversation> ReadAll(const JsonlDataset& dataset) {
  std::vector<Conversation> out;
  for (int64_t i = 0; i < dataset.size(); ++i) {
    absl::StatusOr<Conversation> record = dataset.Get(i);
    EXPECT_TRUE(record.ok()) << "record " << i << ": " << record.status();
    out.push_back(record.ok() ? *record : Conversation{});
  }
  return out;
}

// A fresh folder per test under $AGORA_SCRATCH (set by ctest), else the system temp folder; removed when the test
// passes, kept for a look when it fails.
class JsonlDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* scratch = std::getenv("AGORA_SCRATCH");
    const fs::path root = scratch != nullptr && *scratch != '\0' ? fs::path(scratch) : fs::temp_directory_path();
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = root / "jsonl_dataset_test" / info->test_suite_name() / info->name();  // parameterized names add folders
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // Writes `content` byte for byte to a file in the test's folder.
  fs::path Write(const std::string& content, const std::string& name = "data.jsonl") {
    const fs::path path = dir_ / name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
    out.close();
    EXPECT_TRUE(out.good()) << path;
    return path;
  }

  // "PATH:LINE: " as the dataset's messages start.
  static std::string Where(const fs::path& path, int line) { return path.string() + ":" + std::to_string(line) + ": "; }

  fs::path dir_;
};

// --- the two formats -----------------------------------------------------------------------------------------

TEST_F(JsonlDatasetTest, ReadsMessagesRecordsInOrderIgnoringOtherFields) {
  const fs::path path = Write(
      R"({"id": 1, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, )"
      R"({"role": "assistant", "content": "Hello.", "weight": 0}]})" "\n"
      R"({"messages": [{"role": "user", "content": "a\nb \"q\" \t"}, {"role": "assistant", "content": "1"}, )"
      R"({"role": "user", "content": "again"}, {"role": "assistant", "content": "2"}]})" "\n");
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(path, RecordFormat::kMessages);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->format(), RecordFormat::kMessages);
  EXPECT_EQ(dataset->path(), path);
  EXPECT_EQ(dataset->skipped_lines(), 0);
  EXPECT_THAT(
      ReadAll(*dataset),
      ElementsAre(Conv({{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}}),
                  Conv({{"user", "a\nb \"q\" \t"}, {"assistant", "1"}, {"user", "again"}, {"assistant", "2"}})));
}

TEST_F(JsonlDatasetTest, PromptResponseSystemIsOptional) {
  struct Case {
    std::string system_field;  // spliced into the record
    std::vector<Message> leading;
  };
  const std::vector<Case> cases = {
      {"", {}},
      {R"(, "system": null)", {}},
      {R"(, "system": "")", {}},
      {R"(, "system": "Be kind.")", {{"system", "Be kind."}}},
  };
  std::string content;
  for (const Case& c : cases) content += R"({"prompt": "Q", "response": "A", "extra": [1])" + c.system_field + "}\n";
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(Write(content), RecordFormat::kPromptResponse);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  ASSERT_EQ(dataset->size(), static_cast<int64_t>(cases.size()));
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].system_field);
    std::vector<Message> expected = cases[i].leading;
    expected.push_back({"user", "Q"});
    expected.push_back({"assistant", "A"});
    absl::StatusOr<Conversation> record = dataset->Get(static_cast<int64_t>(i));
    ASSERT_TRUE(record.ok()) << record.status();
    EXPECT_EQ(*record, Conv(expected));
  }
}

TEST_F(JsonlDatasetTest, AutoDetectsTheFormatFromTheFirstRecord) {
  struct Case {
    std::string content;
    RecordFormat format;
    Conversation first;
  };
  const std::vector<Case> cases = {
      {R"({"messages": [{"role": "user", "content": "u"}]})" "\n", RecordFormat::kMessages, Conv({{"user", "u"}})},
      {R"({"prompt": "p", "response": "r"})" "\n", RecordFormat::kPromptResponse,
       Conv({{"user", "p"}, {"assistant", "r"}})},
      // Leading blank lines do not decide anything.
      {"\n  \n" R"({"system": "s", "prompt": "p", "response": "r"})", RecordFormat::kPromptResponse,
       Conv({{"system", "s"}, {"user", "p"}, {"assistant", "r"}})},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.content);
    absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(Write(c.content));
    ASSERT_TRUE(dataset.ok()) << dataset.status();
    EXPECT_EQ(dataset->format(), c.format);
    EXPECT_THAT(ReadAll(*dataset), ElementsAre(c.first));
  }
}

TEST_F(JsonlDatasetTest, AutoRejectsAFileThatMixesFormatsNamingTheLine) {
  const std::string messages = R"({"messages": [{"role": "user", "content": "u"}]})";
  const std::string prompt = R"({"prompt": "p", "response": "r"})";
  struct Case {
    std::string content;
    std::string error;  // after "PATH:3: "
  };
  const std::vector<Case> cases = {
      {messages + "\n" + messages + "\n" + prompt + "\n",
       R"(expected "messages" to be a non-empty array of {"role", "content"} objects)"},
      {prompt + "\n\n" + messages + "\n", R"(expected a string field "prompt")"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.content);
    const fs::path path = Write(c.content);
    absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(path);
    ASSERT_FALSE(dataset.ok());
    EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Text(dataset.status()), Where(path, 3) + c.error);
  }
}

TEST_F(JsonlDatasetTest, AnExplicitFormatIsNotOverriddenByTheRecords) {
  const fs::path messages = Write(R"({"messages": [{"role": "user", "content": "u"}]})" "\n", "messages.jsonl");
  const fs::path prompt = Write(R"({"prompt": "p", "response": "r"})" "\n", "prompt.jsonl");
  absl::StatusOr<JsonlDataset> as_prompt = JsonlDataset::Open(messages, RecordFormat::kPromptResponse);
  ASSERT_FALSE(as_prompt.ok());
  EXPECT_EQ(Text(as_prompt.status()), Where(messages, 1) + R"(expected a string field "prompt")");
  absl::StatusOr<JsonlDataset> as_messages = JsonlDataset::Open(prompt, RecordFormat::kMessages);
  ASSERT_FALSE(as_messages.ok());
  EXPECT_EQ(Text(as_messages.status()),
            Where(prompt, 1) + R"(expected "messages" to be a non-empty array of {"role", "content"} objects)");
}

TEST_F(JsonlDatasetTest, EmptyOrBlankFileHasNoRecordsAndLeavesAutoUnresolved) {
  for (const std::string content : {"", "\n", " \t\n\r\n\n   "}) {
    SCOPED_TRACE(::testing::PrintToString(content));
    absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(Write(content));
    ASSERT_TRUE(dataset.ok()) << dataset.status();
    EXPECT_EQ(dataset->size(), 0);
    EXPECT_EQ(dataset->skipped_lines(), 0);
    EXPECT_EQ(dataset->format(), RecordFormat::kAuto);
  }
}

// --- field names -------------------------------------------------------------------------------------------

TEST_F(JsonlDatasetTest, FieldMapReadsAShareGptStyleFile) {
  const FieldMap sharegpt{.messages = "conversations", .role = "from", .content = "value"};
  const fs::path path = Write(
      R"({"id": "a", "conversations": [{"from": "system", "value": "S"}, {"from": "user", "value": "U"}, )"
      R"({"from": "assistant", "value": "A"}]})" "\n"
      // The default names mean nothing under this map: "messages" is just another ignored field.
      R"({"messages": [], "conversations": [{"from": "user", "value": "U2"}]})" "\n");
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(path, RecordFormat::kAuto, sharegpt);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->format(), RecordFormat::kMessages);
  EXPECT_THAT(ReadAll(*dataset), ElementsAre(Conv({{"system", "S"}, {"user", "U"}, {"assistant", "A"}}),
                                             Conv({{"user", "U2"}})));
}

TEST_F(JsonlDatasetTest, FieldMapNamesItsFieldsInErrors) {
  const FieldMap sharegpt{.messages = "conversations", .role = "from", .content = "value"};
  struct Case {
    std::string line;
    std::string error;
  };
  const std::vector<Case> cases = {
      // Real ShareGPT roles are not translated.
      {R"({"conversations": [{"from": "user", "value": "U"}, {"from": "human", "value": "H"}]})",
       R"(conversations[1]: unknown role "human" (expected "system", "user" or "assistant"))"},
      {R"({"conversations": [{"role": "user", "content": "U"}]})",
       R"(conversations[0]: expected a string field "from")"},
      {R"({"conversations": []})",
       R"(expected "conversations" to be a non-empty array of {"from", "value"} objects, got an empty array)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.line);
    const fs::path path = Write(c.line + "\n");
    absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(path, RecordFormat::kMessages, sharegpt);
    ASSERT_FALSE(dataset.ok());
    EXPECT_EQ(Text(dataset.status()), Where(path, 1) + c.error);
  }
}

TEST_F(JsonlDatasetTest, FieldMapRenamesPromptResponseAndSystem) {
  const FieldMap alpaca{.prompt = "instruction", .response = "output", .system = "context"};
  const fs::path path = Write(R"({"instruction": "I", "output": "O", "context": "C", "system": 5})" "\n"
                              R"({"instruction": "I2", "output": "O2", "prompt": 1})" "\n");
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(path, RecordFormat::kAuto, alpaca);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->format(), RecordFormat::kPromptResponse);
  EXPECT_THAT(ReadAll(*dataset), ElementsAre(Conv({{"system", "C"}, {"user", "I"}, {"assistant", "O"}}),
                                             Conv({{"user", "I2"}, {"assistant", "O2"}})));

  const fs::path defaults = Write(R"({"prompt": "p", "response": "r"})" "\n", "defaults.jsonl");
  absl::StatusOr<JsonlDataset> wrong = JsonlDataset::Open(defaults, RecordFormat::kAuto, alpaca);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(Text(wrong.status()), Where(defaults, 1) + R"(expected a string field "instruction")");
}

// --- offsets and line numbers ------------------------------------------------------------------------------

TEST_F(JsonlDatasetTest, OffsetsAndLineNumbersSkipBlankLinesAndHandleCrlfAndAMissingLastNewline) {
  const std::vector<std::string> records = {
      // Multi-byte characters before later lines: offsets count bytes.
      R"({"prompt": "héllo, 世界 🙂", "response": "\u00e9\ud83d\ude42"})",
      R"({"prompt": "two", "response": "2"})",
      R"({"prompt": "three", "response": "3"})",
  };
  // Line 1 blank, 2 record, 3 blank with "\r\n", 4 whitespace, 5 record with "\r\n", 6 blank, 7 record without "\n".
  const std::string content =
      "\n" + records[0] + "\n" + "\r\n" + " \t \n" + records[1] + "\r\n" + "\n" + records[2];
  const fs::path path = Write(content);
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(path);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  ASSERT_EQ(dataset->size(), 3);
  const std::vector<int64_t> line_numbers = {2, 5, 7};
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(dataset->line_number(i), line_numbers[i]) << i;
    EXPECT_EQ(dataset->offset(i), content.find(records[i])) << i;
  }
  EXPECT_EQ(dataset->offset(0), 1u);
  EXPECT_EQ(dataset->offset(2), content.size() - records[2].size());
  EXPECT_THAT(ReadAll(*dataset), ElementsAre(Conv({{"user", "héllo, 世界 🙂"}, {"assistant", "é🙂"}}),
                                             Conv({{"user", "two"}, {"assistant", "2"}}),
                                             Conv({{"user", "three"}, {"assistant", "3"}})));
}

TEST_F(JsonlDatasetTest, LinesThatCrossTheReadBufferKeepTheirOffsets) {
  // Scan reads 1 MiB at a time: line 1 puts its "\r" as the buffer's last byte and its "\n" in the next buffer,
  // line 2 starts right after, line 3 spans several buffers, line 4 ends the file without a newline.
  constexpr size_t kBuffer = size_t{1} << 20;
  const std::string head = R"({"prompt": ")", tail = R"(", "response": "r"})";
  const std::string line1 = head + std::string(kBuffer - 1 - head.size() - tail.size(), 'a') + tail;
  const std::string line2 = R"({"prompt": "b", "response": "r"})";
  const std::string line3 = head + std::string(3 * kBuffer, 'c') + tail;
  const std::string line4 = R"({"prompt": "d", "response": "r"})";
  const std::string content = line1 + "\r\n" + line2 + "\n" + line3 + "\n" + line4;
  ASSERT_EQ(content[kBuffer - 1], '\r');
  ASSERT_EQ(content[kBuffer], '\n');
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(Write(content));
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  ASSERT_EQ(dataset->size(), 4);
  const std::vector<uint64_t> offsets = {0, kBuffer + 1, kBuffer + 1 + line2.size() + 1,
                                         content.size() - line4.size()};
  const std::vector<std::string> prompts = {std::string(line1.size() - head.size() - tail.size(), 'a'), "b",
                                            std::string(3 * kBuffer, 'c'), "d"};
  for (int64_t i = 0; i < 4; ++i) {
    EXPECT_EQ(dataset->offset(i), offsets[i]) << i;
    EXPECT_EQ(dataset->line_number(i), i + 1);
    absl::StatusOr<Conversation> record = dataset->Get(i);
    ASSERT_TRUE(record.ok()) << record.status();
    EXPECT_TRUE(*record == Conv({{"user", prompts[i]}, {"assistant", "r"}})) << "record " << i;
  }
}

// --- malformed lines -----------------------------------------------------------------------------------------

struct BadLineCase {
  std::string name;
  RecordFormat file_format;  // the format of the good lines 1 and 3 around the bad line 2
  std::string line;
  std::string error;  // after "PATH:2: "; "byte N" is nlohmann's 1-based position in the line
};
void PrintTo(const BadLineCase& c, std::ostream* os) { *os << c.name; }

class BadLineTest : public JsonlDatasetTest, public ::testing::WithParamInterface<BadLineCase> {
 protected:
  // Good record `n` of the parameter's format, and the conversation it reads as.
  std::string GoodLine(int n) const {
    const std::string s = std::to_string(n);
    return GetParam().file_format == RecordFormat::kMessages
               ? R"({"messages": [{"role": "user", "content": "q)" + s + R"("}, {"role": "assistant", "content": "a)" +
                     s + R"("}]})"
               : R"({"prompt": "q)" + s + R"(", "response": "a)" + s + R"("})";
  }
  static Conversation Good(int n) {
    return Conv({{"user", "q" + std::to_string(n)}, {"assistant", "a" + std::to_string(n)}});
  }
  fs::path WriteFile() { return Write(GoodLine(1) + "\n" + GetParam().line + "\n" + GoodLine(3) + "\n"); }
};

TEST_P(BadLineTest, FailsOpenNamingFileAndLineUnderErrorPolicy) {
  const fs::path path = WriteFile();
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(path);  // kAuto and kError are the defaults
  ASSERT_FALSE(dataset.ok());
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Text(dataset.status()), Where(path, 2) + GetParam().error);
}

TEST_P(BadLineTest, IsSkippedAndCountedUnderSkipPolicy) {
  const fs::path path = WriteFile();
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(path, RecordFormat::kAuto, {}, BadLinePolicy::kSkip);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->format(), GetParam().file_format);
  EXPECT_EQ(dataset->skipped_lines(), 1);
  EXPECT_THAT(dataset->skipped_messages(), ElementsAre(Where(path, 2) + GetParam().error));
  ASSERT_EQ(dataset->size(), 2);
  EXPECT_EQ(dataset->line_number(1), 3);
  EXPECT_THAT(ReadAll(*dataset), ElementsAre(Good(1), Good(3)));
}

const RecordFormat kMsg = RecordFormat::kMessages, kPr = RecordFormat::kPromptResponse;
const std::string kMessagesShape = R"(expected "messages" to be a non-empty array of {"role", "content"} objects)";

INSTANTIATE_TEST_SUITE_P(
    JsonlDataset, BadLineTest,
    ::testing::Values(
        BadLineCase{"TruncatedJson", kMsg, R"({"messages": [)",
                    "expected a JSON object (invalid JSON at byte 15: syntax error while parsing value - unexpected "
                    "end of input; expected '[', '{', or a literal)"},
        BadLineCase{"MissingComma", kPr, R"({"prompt": "q" "response": "a"})",
                    "expected a JSON object (invalid JSON at byte 25: syntax error while parsing object - unexpected "
                    "string literal; expected '}')"},
        BadLineCase{"TrailingText", kPr, R"({"prompt": "q", "response": "a"} x)",
                    "expected a JSON object (invalid JSON at byte 34: syntax error while parsing value - invalid "
                    "literal; last read: '\"a\"} x'; expected end of input)"},
        BadLineCase{"ArrayRecord", kMsg, R"([{"role": "user", "content": "u"}])", "expected a JSON object, got array"},
        BadLineCase{"StringRecord", kPr, R"("prompt")", "expected a JSON object, got string"},
        BadLineCase{"NullRecord", kPr, "null", "expected a JSON object, got null"},
        BadLineCase{"MissingMessages", kMsg, R"({"prompt": "q", "response": "a"})", kMessagesShape},
        BadLineCase{"MessagesNotArray", kMsg, R"({"messages": {"role": "user"}})", kMessagesShape + ", got object"},
        BadLineCase{"EmptyMessages", kMsg, R"({"messages": []})", kMessagesShape + ", got an empty array"},
        BadLineCase{"MessageNotObject", kMsg, R"({"messages": [{"role": "user", "content": "u"}, "hi"]})",
                    R"(messages[1]: expected an object with string fields "role" and "content", got string)"},
        BadLineCase{"MissingRole", kMsg, R"({"messages": [{"content": "u"}]})",
                    R"(messages[0]: expected a string field "role")"},
        BadLineCase{"RoleNotString", kMsg, R"({"messages": [{"role": 1, "content": "u"}]})",
                    R"(messages[0]: expected a string field "role", got number)"},
        BadLineCase{"ContentNull", kMsg, R"({"messages": [{"role": "user", "content": null}]})",
                    R"(messages[0]: expected a string field "content", got null)"},
        BadLineCase{"UnknownRole", kMsg, R"({"messages": [{"role": "tool", "content": "u"}]})",
                    R"(messages[0]: unknown role "tool" (expected "system", "user" or "assistant"))"},
        BadLineCase{"MissingPrompt", kPr, R"({"response": "a"})", R"(expected a string field "prompt")"},
        BadLineCase{"ResponseNotString", kPr, R"({"prompt": "q", "response": ["a"]})",
                    R"(expected a string field "response", got array)"},
        BadLineCase{"SystemNotString", kPr, R"({"prompt": "q", "response": "a", "system": 3})",
                    R"(expected "system" to be a string when present, got number)"},
        BadLineCase{"MixedFormat", kPr, R"({"messages": [{"role": "user", "content": "u"}]})",
                    R"(expected a string field "prompt")"}),
    [](const ::testing::TestParamInfo<BadLineCase>& info) { return info.param.name; });

// A download or a copy cut short: the last record ends mid-line, without its newline.
TEST_F(JsonlDatasetTest, AFileCutMidLineNamesItsLastLine) {
  const std::string good = R"({"prompt": "q", "response": "a"})";
  const fs::path path = Write(good + "\n" + good + "\n" + good.substr(0, 20));
  absl::StatusOr<JsonlDataset> stopped = JsonlDataset::Open(path);
  ASSERT_FALSE(stopped.ok());
  EXPECT_THAT(Text(stopped.status()), HasSubstr(Where(path, 3) + "expected a JSON object (invalid JSON at byte 21"));
  absl::StatusOr<JsonlDataset> skipped = JsonlDataset::Open(path, RecordFormat::kAuto, {}, BadLinePolicy::kSkip);
  ASSERT_TRUE(skipped.ok()) << skipped.status();
  EXPECT_EQ(skipped->size(), 2);
  EXPECT_EQ(skipped->skipped_lines(), 1);
}

TEST_F(JsonlDatasetTest, InvalidUtf8IsAMalformedLine) {
  const fs::path path = Write(R"({"prompt": "ok", "response": "r"})" "\n"
                              "{\"prompt\": \"\xff\", \"response\": \"r\"}\n");
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(path);
  ASSERT_FALSE(dataset.ok());
  EXPECT_THAT(Text(dataset.status()), HasSubstr(Where(path, 2) + "expected a JSON object (invalid JSON at byte 13: "));
  EXPECT_THAT(Text(dataset.status()), HasSubstr("ill-formed UTF-8 byte"));
}

TEST_F(JsonlDatasetTest, ErrorPolicyStopsAtTheFirstBadLine) {
  const fs::path path = Write("\n" R"({"prompt": "q", "response": "a"})" "\n" "[]\n" "{}\n");
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(path);
  ASSERT_FALSE(dataset.ok());
  EXPECT_EQ(Text(dataset.status()), Where(path, 3) + "expected a JSON object, got array");
}

TEST_F(JsonlDatasetTest, SkipPolicyCountsEveryBadLineButKeepsOnlyTheFirstMessages) {
  // 25 bad lines at odd line numbers, 25 good records at even ones.
  std::string content;
  for (int i = 0; i < 25; ++i) content += "not json " + std::to_string(i) + "\n" + R"({"prompt": "q)" +
                                          std::to_string(i) + R"(", "response": "a"})" + "\n";
  const fs::path path = Write(content);
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(path, RecordFormat::kAuto, {}, BadLinePolicy::kSkip);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->skipped_lines(), 25);
  ASSERT_EQ(dataset->skipped_messages().size(), static_cast<size_t>(JsonlDataset::kMaxSkippedMessages));
  for (int k = 0; k < JsonlDataset::kMaxSkippedMessages; ++k) {
    EXPECT_THAT(dataset->skipped_messages()[k], HasSubstr(Where(path, 2 * k + 1) + "expected a JSON object (invalid"));
  }
  ASSERT_EQ(dataset->size(), 25);
  EXPECT_EQ(dataset->line_number(24), 50);
  absl::StatusOr<Conversation> last = dataset->Get(24);
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(*last, Conv({{"user", "q24"}, {"assistant", "a"}}));
}

TEST_F(JsonlDatasetTest, SkipPolicyLetsTheFirstValidRecordDecideAuto) {
  // Line 1 looks like the messages format but is invalid; it does not fix the format for line 2.
  const fs::path path = Write(R"({"messages": []})" "\n" R"({"prompt": "q", "response": "a"})" "\n");
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(path, RecordFormat::kAuto, {}, BadLinePolicy::kSkip);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->format(), RecordFormat::kPromptResponse);
  EXPECT_EQ(dataset->skipped_lines(), 1);
  EXPECT_THAT(ReadAll(*dataset), ElementsAre(Conv({{"user", "q"}, {"assistant", "a"}})));
}

TEST_F(JsonlDatasetTest, SkipPolicyOnAFileWithNoValidRecordIsEmpty) {
  const fs::path path = Write("{\n[\n");
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(path, RecordFormat::kAuto, {}, BadLinePolicy::kSkip);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->size(), 0);
  EXPECT_EQ(dataset->skipped_lines(), 2);
  EXPECT_EQ(dataset->format(), RecordFormat::kAuto);
}

// --- Get reads the file --------------------------------------------------------------------------------------

TEST_F(JsonlDatasetTest, GetRereadsTheFileAtTheIndexedOffset) {
  const std::string line1 = R"({"prompt": "one", "response": "1"})";
  const fs::path path = Write(line1 + "\n" + R"({"prompt": "two", "response": "2"})" + "\n");
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(path);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  ASSERT_EQ(dataset->size(), 2);

  // Same length, new text: Get sees what the file holds now, so nothing was cached at Open.
  Write(line1 + "\n" + R"({"prompt": "TWO", "response": "2"})" + "\n");
  absl::StatusOr<Conversation> changed = dataset->Get(1);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(*changed, Conv({{"user", "TWO"}, {"assistant", "2"}}));

  Write(line1 + "\n" + R"({"prompt": "two", "response":  2 })" + "\n");
  absl::StatusOr<Conversation> broken = dataset->Get(1);
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Text(broken.status()), Where(path, 2) + R"(expected a string field "response", got number)");

  Write(line1 + "\n" + R"({"prompt")");
  absl::StatusOr<Conversation> shrunk = dataset->Get(1);
  ASSERT_FALSE(shrunk.ok());
  EXPECT_EQ(shrunk.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Text(shrunk.status()), Where(path, 2) + "the file shrank since it was indexed");
}

TEST_F(JsonlDatasetTest, GetOutOfRangeNamesTheRecord) {
  const fs::path path = Write(R"({"prompt": "q", "response": "a"})" "\n");
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(path);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  for (const int64_t i : {int64_t{-1}, int64_t{1}, int64_t{1} << 40}) {
    absl::StatusOr<Conversation> record = dataset->Get(i);
    ASSERT_FALSE(record.ok()) << i;
    EXPECT_EQ(record.status().code(), absl::StatusCode::kOutOfRange);
    EXPECT_EQ(Text(record.status()), path.string() + ": record " + std::to_string(i) + " of 1");
  }
}

TEST_F(JsonlDatasetTest, LargeFileIsIndexedAndItsLastRecordRead) {
  constexpr int kLines = 200'000;
  std::string content;
  content.reserve(kLines * 40);
  uint64_t last_offset = 0;
  for (int i = 0; i < kLines; ++i) {
    last_offset = content.size();
    content += R"({"prompt": "q)" + std::to_string(i) + R"(", "response": "a"})" + "\n";
  }
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(Write(content));
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  ASSERT_EQ(dataset->size(), kLines);
  EXPECT_EQ(dataset->offset(kLines - 1), last_offset);
  EXPECT_EQ(dataset->line_number(kLines - 1), kLines);
  for (const int64_t i : {int64_t{0}, int64_t{123'456}, int64_t{kLines - 1}}) {
    absl::StatusOr<Conversation> record = dataset->Get(i);
    ASSERT_TRUE(record.ok()) << record.status();
    EXPECT_EQ(*record, Conv({{"user", "q" + std::to_string(i)}, {"assistant", "a"}}));
  }
}

TEST_F(JsonlDatasetTest, GetFromSeveralThreadsAtOnce) {
  constexpr int kRecords = 500, kThreads = 8;
  std::string content;
  for (int i = 0; i < kRecords; ++i) content += R"({"prompt": "q)" + std::to_string(i) + R"(", "response": "a"})" "\n";
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(Write(content));
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  std::vector<int> wrong(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < kRecords; ++k) {
        const int i = (k * 7 + t * 61) % kRecords;  // each thread in its own order
        absl::StatusOr<Conversation> record = dataset->Get(i);
        if (!record.ok() || !(*record == Conv({{"user", "q" + std::to_string(i)}, {"assistant", "a"}}))) ++wrong[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(wrong, ::testing::Each(0));
}

TEST_F(JsonlDatasetTest, AMovedDatasetKeepsReading) {
  const fs::path a = Write(R"({"prompt": "from a", "response": "r"})" "\n", "a.jsonl");
  const fs::path b = Write(R"({"prompt": "from b", "response": "r"})" "\n", "b.jsonl");
  absl::StatusOr<JsonlDataset> opened_a = JsonlDataset::Open(a), opened_b = JsonlDataset::Open(b);
  ASSERT_TRUE(opened_a.ok() && opened_b.ok());
  JsonlDataset moved(std::move(*opened_a));
  EXPECT_EQ(moved.path(), a);
  moved = std::move(*opened_b);  // closes a's file, takes b's
  EXPECT_EQ(moved.path(), b);
  absl::StatusOr<Conversation> record = moved.Get(0);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(*record, Conv({{"user", "from b"}, {"assistant", "r"}}));
}

// --- files that cannot be read ----------------------------------------------------------------------------------

TEST_F(JsonlDatasetTest, MissingFileNamesThePath) {
  const fs::path path = dir_ / "missing.jsonl";
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(path);
  ASSERT_FALSE(dataset.ok());
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Text(dataset.status()), "cannot open " + path.string() + ": " + std::strerror(ENOENT));
}

TEST_F(JsonlDatasetTest, DirectoryNamesThePath) {
  absl::StatusOr<JsonlDataset> dataset = JsonlDataset::Open(dir_);
  ASSERT_FALSE(dataset.ok());
  EXPECT_EQ(Text(dataset.status()), "cannot read " + dir_.string() + ": " + std::strerror(EISDIR));
}

// --- option names --------------------------------------------------------------------------------------------

TEST(JsonlDatasetOptions, ParseRecordFormat) {
  EXPECT_EQ(ParseRecordFormat("auto").value(), RecordFormat::kAuto);
  EXPECT_EQ(ParseRecordFormat("messages").value(), RecordFormat::kMessages);
  EXPECT_EQ(ParseRecordFormat("prompt_response").value(), RecordFormat::kPromptResponse);
  for (const std::string bad : {"", "Messages", "prompt-response", "ShareGPT", "fastchat"}) {
    absl::StatusOr<RecordFormat> format = ParseRecordFormat(bad);
    ASSERT_FALSE(format.ok()) << bad;
    EXPECT_EQ(format.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Text(format.status()),
              "unknown record format \"" + bad +
                  "\" (expected auto, messages, prompt_response, sharegpt, dromedary, sandbox_groups or preference)");
  }
}

TEST(JsonlDatasetOptions, ParseBadLinePolicy) {
  EXPECT_EQ(ParseBadLinePolicy("error").value(), BadLinePolicy::kError);
  EXPECT_EQ(ParseBadLinePolicy("skip").value(), BadLinePolicy::kSkip);
  for (const std::string bad : {"", "Skip", "ignore"}) {
    absl::StatusOr<BadLinePolicy> policy = ParseBadLinePolicy(bad);
    ASSERT_FALSE(policy.ok()) << bad;
    EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Text(policy.status()), "unknown bad-line policy \"" + bad + "\" (expected error or skip)");
  }
}

}  // namespace
}  // namespace agora
