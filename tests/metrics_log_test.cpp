// metrics.jsonl (trainer/metrics_log.h): the line format, and what a resume keeps of an earlier run's file.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/scratch_files.h"
#include "trainer/metrics_log.h"

namespace agora {
namespace {

namespace fs = std::filesystem;

using agora::testing::Lines;
using agora::testing::Now;
using agora::testing::ReadAll;
using agora::testing::ScratchDir;

MetricsRecord Train(int64_t step) { return {"train", step, {{"loss", 3.0 - 0.1 * step}, {"lr", 1e-4}}}; }

TEST(MetricsLogTest, ResumeDropsRecordsAfterTheCheckpoint) {
  const fs::path path = ScratchDir() / "metrics.jsonl";
  {
    auto log = MetricsLog::Open(path, -1);
    ASSERT_TRUE(log.ok()) << log.status();
    for (int64_t step = 1; step <= 10; ++step) {
      ASSERT_TRUE((*log)->Write(Train(step)).ok());
      if (step % 5 == 0) {
        ASSERT_TRUE((*log)->Write({"eval", step, {{"loss", 2.0}}}).ok());
      }
    }
  }
  const std::vector<std::string> before = Lines(ReadAll(path));
  ASSERT_EQ(before.size(), 12u);
  std::ofstream(path, std::ios::app) << R"({"kind":"train","st)";  // a line torn by the crash

  auto log = MetricsLog::Open(path, /*resume_step=*/6);
  ASSERT_TRUE(log.ok()) << log.status();
  // Steps 1..5, the eval at 5, step 6: the first seven lines, byte for byte.
  EXPECT_EQ(Lines(ReadAll(path)), std::vector<std::string>(before.begin(), before.begin() + 7));

  ASSERT_TRUE((*log)->Write(Train(7)).ok());
  const std::vector<std::string> after = Lines(ReadAll(path));
  ASSERT_EQ(after.size(), 8u);
  std::vector<int64_t> steps;
  for (const std::string& line : after) steps.push_back(nlohmann::json::parse(line).at("step").get<int64_t>());
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 5, 6, 7}));
}

TEST(MetricsLogTest, ResumeWithoutAFileStartsOne) {
  const fs::path path = ScratchDir() / "metrics.jsonl";
  auto log = MetricsLog::Open(path, 100);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_TRUE((*log)->Write(Train(101)).ok());
  EXPECT_EQ(Lines(ReadAll(path)).size(), 1u);
}

// A fresh run drops what an attempt killed before its first checkpoint wrote (found by the kill loop: the step-0
// eval appeared twice), torn line included.
TEST(MetricsLogTest, FreshRunDropsWhatAnAttemptWithoutCheckpointWrote) {
  const fs::path path = ScratchDir() / "metrics.jsonl";
  std::ofstream(path) << "{\"kind\":\"eval\",\"step\":0}\n{\"kind\":\"train\",\"step\":1}\n{\"kind\":\"tr";
  auto log = MetricsLog::Open(path, -1);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_TRUE((*log)->Write(Train(1)).ok());
  const std::vector<std::string> lines = Lines(ReadAll(path));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(lines[0]).at("step"), 1);
}

TEST(MetricsLogTest, LineFormatRoundTripsDoublesAndNullsNonFinite) {
  const fs::path path = ScratchDir() / "metrics.jsonl";
  auto log = MetricsLog::Open(path, -1);
  ASSERT_TRUE(log.ok()) << log.status();
  const double third = 1.0 / 3.0, sum = 0.1 + 0.2;
  const double before = Now();
  ASSERT_TRUE((*log)
                  ->Write({"eval", 42,
                           {{"loss", third},
                            {"sum", sum},
                            {"nan", std::nan("")},
                            {"inf", std::numeric_limits<double>::infinity()},
                            {"minus_inf", -std::numeric_limits<double>::infinity()}}})
                  .ok());
  const std::string text = ReadAll(path);
  ASSERT_TRUE(text.ends_with("\n"));
  EXPECT_TRUE(text.starts_with(
      R"({"kind":"eval","step":42,"loss":0.3333333333333333,"sum":0.30000000000000004,"nan":null,"inf":null,"minus_inf":null,"time":)"))
      << text;
  const nlohmann::json record = nlohmann::json::parse(text);
  EXPECT_EQ(record.at("loss").get<double>(), third);
  EXPECT_EQ(record.at("sum").get<double>(), sum);
  EXPECT_GE(record.at("time").get<double>(), std::floor(before));
  EXPECT_LE(record.at("time").get<double>(), Now());
}

TEST(MetricsLogTest, RejectsReservedAndRepeatedNames) {
  auto log = MetricsLog::Open(ScratchDir() / "metrics.jsonl", -1);
  ASSERT_TRUE(log.ok()) << log.status();
  for (const char* name : {"kind", "step", "time"}) {
    EXPECT_EQ((*log)->Write({"train", 1, {{name, 1.0}}}).code(), absl::StatusCode::kInvalidArgument) << name;
  }
  EXPECT_EQ((*log)->Write({"train", 1, {{"loss", 1.0}, {"loss", 2.0}}}).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace agora
