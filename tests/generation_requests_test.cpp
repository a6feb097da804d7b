// The request file of `agora generate --requests`: what the fuzz target's regressions hold, as named errors, and
// the edges of integer_range.
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli/generation_requests.h"

namespace agora::cli {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<std::vector<RequestLine>> Read(const std::string& text, bool skip = false, int64_t* skipped = nullptr) {
  const std::filesystem::path path = std::filesystem::temp_directory_path() / "agora_generation_requests_test.jsonl";
  std::ofstream(path) << text;
  int64_t ignored = 0;
  return ReadRequestLines(path, SamplingOptions{}, skip, skipped != nullptr ? skipped : &ignored);
}

std::string Error(const std::string& line) {
  const auto lines = Read(line + "\n");
  EXPECT_FALSE(lines.ok()) << line;
  return lines.ok() ? "" : std::string(lines.status().message());
}

TEST(GenerationRequests, IntegersMustBeJsonIntegers) {
  EXPECT_THAT(Error(R"({"id": 1, "prompt": "x", "max_new_tokens": 1e300})"),
              HasSubstr(":1: max_new_tokens: expected an integer, got 1e+300"));
  EXPECT_THAT(Error(R"({"id": 1, "prompt": "x", "top_k": 2.5})"), HasSubstr("top_k: expected an integer, got 2.5"));
  EXPECT_THAT(Error(R"({"id": 1, "prompt_ids": [1, 2.5e40]})"), HasSubstr("prompt_ids: expected an integer"));
  EXPECT_THAT(Error(R"({"id": 1, "prompt_ids": [1, 18446744073709551615]})"),
              HasSubstr("prompt_ids: integer too large"));
  EXPECT_THAT(Error(R"({"id": 1, "prompt": "x", "seed": -1})"), HasSubstr("seed: expected an integer >= 0"));
}

TEST(GenerationRequests, IntegerRangeAtTheEdgesOfInt64) {
  EXPECT_THAT(Error(R"({"id": 1, "prompt": "x", "integer_range": [-9223372036854775808, 9223372036854775807]})"),
              HasSubstr("integer_range: expected [lo, hi] with lo <= hi, at most 10000 values"));
  const auto lines = Read(R"({"id": 1, "prompt": "x", "integer_range": [9223372036854775805, 9223372036854775807]})");
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_THAT((*lines)[0].choices,
              ::testing::ElementsAre("9223372036854775805", "9223372036854775806", "9223372036854775807"));
}

TEST(GenerationRequests, LogitBiasNeedsTokenIds) {
  EXPECT_THAT(Error(R"({"id": 1, "prompt": "x", "logit_bias": {"12abc": 1.0}})"),
              HasSubstr("logit_bias: '12abc' is not a token id"));
  EXPECT_THAT(Error(R"({"id": 1, "prompt": "x", "logit_bias": [1.0]})"), HasSubstr("logit_bias: expected"));
  const auto lines = Read(R"({"id": 1, "prompt": "x", "logit_bias": {"7": -1.5}})");
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_EQ((*lines)[0].sampling.logit_bias, (std::vector<std::pair<int64_t, double>>{{7, -1.5}}));
}

TEST(GenerationRequests, MessagesMustBeAList) {
  EXPECT_THAT(Error(R"({"id": 1, "messages": "hi"})"), HasSubstr("messages: expected a list of {role, content}"));
  EXPECT_THAT(Error(R"({"id": 1, "messages": []})"), HasSubstr("messages: expected a list"));
}

TEST(GenerationRequests, BadLinesSkippedAreCounted) {
  int64_t skipped = 0;
  const auto lines = Read("{\"id\": 1, \"prompt\": \"a\"}\n{\"id\": 2, \"prompt\": \"b\", \"top_k\": 1.5}\n"
                          "{\"id\": 1, \"prompt\": \"again\"}\nnot json\n{\"id\": \"3\", \"prompt_ids\": [1, 5]}\n",
                          true, &skipped);
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_EQ(skipped, 3);
  ASSERT_EQ(lines->size(), 2u);
  EXPECT_EQ((*lines)[0].id, "1");
  EXPECT_EQ((*lines)[1].line, 5);
  EXPECT_EQ((*lines)[1].prompt_ids, (std::vector<int64_t>{1, 5}));
}

}  // namespace
}  // namespace agora::cli
