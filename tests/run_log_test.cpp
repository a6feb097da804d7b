// The run's log (trainer/run_log.h): progress formatting, the terminal's redrawn line, log.txt.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "tests/scratch_files.h"
#include "trainer/run_log.h"

namespace agora {
namespace {

namespace fs = std::filesystem;

using agora::testing::Lines;
using agora::testing::ReadAll;
using agora::testing::ScratchDir;

// --- progress -----------------------------------------------------------------------------------------------

TEST(ProgressFormatTest, Durations) {
  EXPECT_EQ(FormatDuration(0), "0:00:00");
  EXPECT_EQ(FormatDuration(59.6), "0:01:00");
  EXPECT_EQ(FormatDuration(3725), "1:02:05");
  EXPECT_EQ(FormatDuration(123 * 3600 + 4 * 60 + 5), "123:04:05");
  EXPECT_EQ(FormatDuration(-1), "-:--:--");
  EXPECT_EQ(FormatDuration(std::nan("")), "-:--:--");
}

TEST(ProgressFormatTest, Counts) {
  EXPECT_EQ(FormatCompactCount(950), "950");
  EXPECT_EQ(FormatCompactCount(999.7), "1.0k");
  EXPECT_EQ(FormatCompactCount(12345.6), "12.3k");
  EXPECT_EQ(FormatCompactCount(999960), "1.00M");
  EXPECT_EQ(FormatCompactCount(4567890), "4.57M");
  EXPECT_EQ(FormatGroupedCount(0), "0");
  EXPECT_EQ(FormatGroupedCount(999), "999");
  EXPECT_EQ(FormatGroupedCount(1000), "1,000");
  EXPECT_EQ(FormatGroupedCount(1234567.8), "1,234,568");
  EXPECT_EQ(FormatGroupedCount(-12345), "-12,345");
}

TEST(ProgressFormatTest, EtaFromThisProcessesPace) {
  const StepReport report{.step = 110, .total_steps = 1000, .elapsed_seconds = 20};
  // 10 steps in 20 s since resuming at 100: 2 s a step for the 890 left.
  EXPECT_DOUBLE_EQ(*EstimateEtaSeconds(report, 100), 1780);
  EXPECT_FALSE(EstimateEtaSeconds(report, 110).has_value());
  EXPECT_FALSE(EstimateEtaSeconds({.step = 5, .total_steps = 0, .elapsed_seconds = 3}, 0).has_value());
}

const StepReport kReport{.step = 120, .total_steps = 1000, .epoch = 1, .loss = 2.345678, .lr = 2e-4,
                         .grad_norm = 0.87654, .tokens_per_second = 12345.6, .elapsed_seconds = 83,
                         .first_step = 100};

TEST(ProgressFormatTest, ProgressLineFitsTheTerminal) {
  EXPECT_EQ(FormatProgressLine(kReport, 100, 754),
            "step 120/1000 [==>                  ]  12% | loss 2.3457 | lr 2.000e-04 | 12.3k tok/s | ETA 0:12:34");
  EXPECT_EQ(FormatProgressLine(kReport, 200, 754),
            "step 120/1000 [====>                                   ]  12% | loss 2.3457 | lr 2.000e-04 | "
            "12.3k tok/s | ETA 0:12:34");
  // Too narrow for a useful bar: dropped; narrower still: cut, never wrapped.
  EXPECT_EQ(FormatProgressLine(kReport, 80, std::nullopt),
            "step 120/1000  12% | loss 2.3457 | lr 2.000e-04 | 12.3k tok/s | ETA -:--:--");
  EXPECT_EQ(FormatProgressLine(kReport, 40, 754), "step 120/1000  12% | loss 2.3457 | lr 2");
  for (int width : {1, 20, 79, 80, 81, 100, 140}) {
    EXPECT_LT(FormatProgressLine(kReport, width, 754).size(), static_cast<size_t>(std::max(width, 1))) << width;
  }
  const StepReport done{.step = 1000, .total_steps = 1000, .loss = 0.5, .lr = 0, .tokens_per_second = 4567890};
  EXPECT_EQ(FormatProgressLine(done, 100, 0),
            "step 1000/1000 [====================] 100% | loss 0.5000 | lr 0.000e+00 | 4.57M tok/s | ETA 0:00:00");
}

TEST(ProgressFormatTest, PlainLine) {
  EXPECT_EQ(FormatPlainStepLine(kReport, 754),
            "step 120/1000 | epoch 1 | loss 2.3457 | lr 2.000e-04 | grad_norm 0.8765 | 12,346 tok/s | "
            "elapsed 0:01:23 | ETA 0:12:34");
}

// --- RunLog -------------------------------------------------------------------------------------------------

std::string ReadBack(std::FILE* file) {
  std::fflush(file);
  std::rewind(file);
  std::string text;
  for (int c; (c = std::fgetc(file)) != EOF;) text.push_back(static_cast<char>(c));
  return text;
}

const std::regex kTimestamped(R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (.*))");

std::vector<std::string> WithoutTimestamps(const std::string& text) {
  std::vector<std::string> messages;
  for (const std::string& line : Lines(text)) {
    std::smatch match;
    EXPECT_TRUE(std::regex_match(line, match, kTimestamped)) << line;
    messages.push_back(match.size() > 1 ? match[1].str() : line);
  }
  return messages;
}

TEST(RunLogTest, TerminalRedrawsOneLineAndPrintsMessagesAboveIt) {
  const fs::path log_path = ScratchDir() / "log.txt";
  std::FILE* console = std::tmpfile();
  ::setenv("COLUMNS", "100", 1);  // a tmpfile has no window size
  StepReport second = kReport;
  second.step = 121;
  {
    auto log = RunLog::Open(log_path, /*terminal=*/true, console);
    ASSERT_TRUE(log.ok()) << log.status();
    (*log)->Info("loading model");
    (*log)->Step(kReport);
    (*log)->Warning("slow step");
    (*log)->Step(second);
    (*log)->Finish();
  }
  const std::string line1 = FormatProgressLine(kReport, 100, EstimateEtaSeconds(kReport, 100));
  const std::string line2 = FormatProgressLine(second, 100, EstimateEtaSeconds(second, 100));
  EXPECT_EQ(ReadBack(console), "\r\033[Kloading model\n\r\033[K" + line1 + "\r\033[Kwarning: slow step\n" + line1 +
                                   "\r\033[K" + line2 + "\n");
  std::fclose(console);
  EXPECT_EQ(WithoutTimestamps(ReadAll(log_path)),
            (std::vector<std::string>{"loading model", FormatPlainStepLine(kReport, EstimateEtaSeconds(kReport, 100)),
                                      "warning: slow step",
                                      FormatPlainStepLine(second, EstimateEtaSeconds(second, 100))}));
}

TEST(RunLogTest, ElsewherePrintsPlainLinesAndAppendsToTheLog) {
  const fs::path log_path = ScratchDir() / "log.txt";
  std::ofstream(log_path) << "2024-01-01 00:00:00 an earlier run\n";
  std::FILE* console = std::tmpfile();
  {
    auto log = RunLog::Open(log_path, /*terminal=*/false, console);
    ASSERT_TRUE(log.ok()) << log.status();
    (*log)->Info("resumed");
    (*log)->Step(kReport);
    (*log)->Finish();
  }
  const std::string plain = FormatPlainStepLine(kReport, EstimateEtaSeconds(kReport, 100));
  EXPECT_EQ(WithoutTimestamps(ReadBack(console)), (std::vector<std::string>{"resumed", plain}));
  std::fclose(console);
  EXPECT_EQ(WithoutTimestamps(ReadAll(log_path)), (std::vector<std::string>{"an earlier run", "resumed", plain}));
}

TEST(RunLogTest, UnwritableLogIsAnError) {
  EXPECT_FALSE(RunLog::Open(ScratchDir() / "missing" / "log.txt", false).ok());
}

}  // namespace
}  // namespace agora
