// The run's logs: CRC-32C, TensorBoard event encoding (golden bytes), metrics.jsonl (resume truncation),
// progress formatting. The event files written into $AGORA_TB_OUT are read back by TensorBoard itself
// (tests/oracle/check_tensorboard_events.py).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "trainer/metrics_log.h"
#include "trainer/run_log.h"
#include "trainer/tensorboard_writer.h"
#include "util/crc32c.h"

namespace agora {
namespace {

namespace fs = std::filesystem;

std::string FromHex(std::string_view hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) bytes.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return bytes;
}

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A fresh folder per test, so reruns and other tests never see each other's files.
fs::path ScratchDir() {
  std::string pattern = (fs::path(::testing::TempDir()) / "run_log_test.XXXXXX").string();
  EXPECT_NE(::mkdtemp(pattern.data()), nullptr);
  return pattern;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// --- CRC-32C ------------------------------------------------------------------------------------------------

// The standard check value, the iSCSI vectors of RFC 3720 B.4, and two more from a table-free bitwise
// reference (python, polynomial 0x82F63B78).
TEST(Crc32cTest, KnownValues) {
  EXPECT_EQ(Crc32c("123456789"), 0xe3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8a9136aau);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62a8ab43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(Crc32c(ascending), 0x46dd794eu);
  EXPECT_EQ(Crc32c(descending), 0x113fdb5cu);
  EXPECT_EQ(Crc32c("a"), 0xc1d04330u);
  EXPECT_EQ(Crc32c("The quick brown fox jumps over the lazy dog"), 0x22620404u);
}

TEST(Crc32cTest, SpanAndStringAgree) {
  const std::string text = "brain.Event:2";
  EXPECT_EQ(Crc32c(absl::MakeConstSpan(reinterpret_cast<const std::byte*>(text.data()), text.size())),
            Crc32c(text));
}

// --- TensorBoard encoding -----------------------------------------------------------------------------------

// The expected bytes are what tensorboard's own event_pb2 serializes (tensorboard 2.20.0), e.g.
// Event(wall_time=1.5, step=3, summary=Summary(value=[Value(tag="loss", simple_value=0.5)])).SerializeToString().
// They pin the field numbers: a summary under the wrong number is silently ignored by TensorBoard.
TEST(TensorBoardEncodingTest, ScalarEventGoldenBytes) {
  EXPECT_EQ(tensorboard::EncodeScalarEvent("loss", 0.5f, 3, 1.5),
            FromHex("09000000000000f83f10032a0d0a0b0a046c6f7373150000003f"));
}

TEST(TensorBoardEncodingTest, FileVersionEventGoldenBytes) {
  EXPECT_EQ(tensorboard::EncodeFileVersionEvent(2.0),
            FromHex("0900000000000000401a0d627261696e2e4576656e743a32"));
}

// Event(wall_time=2.0, step=-1, session_log=SessionLog(status=START)): also pins the 10-byte negative varint.
TEST(TensorBoardEncodingTest, SessionStartEventGoldenBytes) {
  EXPECT_EQ(tensorboard::EncodeSessionStartEvent(-1, 2.0),
            FromHex("09000000000000004010ffffffffffffffffff013a020801"));
}

// Length 26, masked CRCs from the bitwise reference: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
TEST(TensorBoardEncodingTest, RecordFramingGoldenBytes) {
  const std::string event = FromHex("09000000000000f83f10032a0d0a0b0a046c6f7373150000003f");
  EXPECT_EQ(tensorboard::FrameRecord(event),
            FromHex("1a00000000000000129bd82d") + event + FromHex("80655ee3"));
}

// The records of an event file; framing and CRCs are checked against our own Crc32c here, independently by
// TensorBoard's reader in the oracle check.
std::vector<std::string> ReadRecords(const fs::path& path) {
  const std::string bytes = ReadAll(path);
  std::vector<std::string> records;
  size_t pos = 0;
  while (pos + 12 <= bytes.size()) {
    uint64_t length = 0;
    for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<uint8_t>(bytes[pos + i]);
    const std::string data = bytes.substr(pos + 12, length);
    EXPECT_EQ(tensorboard::FrameRecord(data), bytes.substr(pos, 16 + length)) << path << " at " << pos;
    records.push_back(data);
    pos += 16 + length;
  }
  EXPECT_EQ(pos, bytes.size()) << path;
  return records;
}

TEST(TensorBoardWriterTest, ResumedRunGetsANewFileThatSortsLaterAndStartsASession) {
  const fs::path dir = ScratchDir() / "tb";
  auto first = TensorBoardWriter::Create(dir);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE((*first)->AddScalar("train/loss", 2.0, 1).ok());
  auto resumed = TensorBoardWriter::Create(dir, /*resume_step=*/7);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ASSERT_TRUE((*first)->Flush().ok());

  EXPECT_NE((*first)->path(), (*resumed)->path());
  EXPECT_LT((*first)->path().filename(), (*resumed)->path().filename());
  EXPECT_TRUE((*first)->path().filename().string().starts_with("events.out.tfevents."));

  const std::vector<std::string> records = ReadRecords((*first)->path());
  ASSERT_EQ(records.size(), 2u);
  EXPECT_TRUE(records[0].ends_with("brain.Event:2"));
  const std::vector<std::string> resumed_records = ReadRecords((*resumed)->path());
  ASSERT_EQ(resumed_records.size(), 2u);
  EXPECT_EQ(resumed_records[1].substr(9), FromHex("10083a020801"));  // step 8, SessionLog START
}

// The oracle's input: an interrupted run (steps 1..12, last checkpoint at 8) and its resumption (9..20, other
// values) in one folder. TensorBoard must show 1..8 from the first file and 9..20 from the second.
TEST(TensorBoardWriterTest, WritesEventsForTensorBoardToRead) {
  const char* out = std::getenv("AGORA_TB_OUT");
  ASSERT_TRUE(out != nullptr && *out != '\0') << "AGORA_TB_OUT is not set: run this test through ctest";
  const fs::path dir = out;
  fs::remove_all(dir);  // files of an earlier run would merge into this one

  const double written_after = Now();
  nlohmann::ordered_json expected = {{"files", nlohmann::ordered_json::array()}};
  const auto write_run = [&](int64_t resume_step, int64_t first_step, int64_t last_step, double shift) {
    auto writer = TensorBoardWriter::Create(dir, resume_step);
    ASSERT_TRUE(writer.ok()) << writer.status();
    nlohmann::ordered_json scalars = nlohmann::ordered_json::array();
    for (int64_t step = first_step; step <= last_step; ++step) {
      const double loss = 2.5 * std::exp(-step / 7.0) + 0.1 * std::sin(step) + shift;
      const double lr = 3e-4 * std::min(1.0, step / 5.0) * (0.5 + 0.5 * std::cos(M_PI * step / 20.0));
      for (const auto& [tag, value] : {std::pair{"train/loss", loss}, std::pair{"train/lr", lr}}) {
        ASSERT_TRUE((*writer)->AddScalar(tag, value, step).ok());
        scalars.push_back({tag, step, value});
      }
      if (step % 5 == 0) {
        ASSERT_TRUE((*writer)->AddScalar("eval/loss", loss + 0.25, step).ok());
        scalars.push_back({"eval/loss", step, loss + 0.25});
      }
    }
    ASSERT_TRUE((*writer)->Flush().ok());
    expected["files"].push_back({{"name", (*writer)->path().filename().string()},
                                 {"resume_step", resume_step},
                                 {"scalars", scalars}});
  };
  write_run(/*resume_step=*/-1, 1, 12, 0.0);
  write_run(/*resume_step=*/8, 9, 20, 0.0625);
  expected["written_after"] = written_after;
  expected["written_before"] = Now();
  std::ofstream(dir / "expected.json") << expected.dump(2) << "\n";
}

// --- metrics.jsonl ------------------------------------------------------------------------------------------

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

// A fresh run does not rewrite, but its first record still starts on a line of its own.
TEST(MetricsLogTest, FreshRunAppendsAfterATornLine) {
  const fs::path path = ScratchDir() / "metrics.jsonl";
  std::ofstream(path) << "{\"kind\":\"train\",\"step\":1}\n{\"kind\":\"tr";
  auto log = MetricsLog::Open(path, -1);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_TRUE((*log)->Write(Train(1)).ok());
  const std::vector<std::string> lines = Lines(ReadAll(path));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1], "{\"kind\":\"tr");
  EXPECT_EQ(nlohmann::json::parse(lines[2]).at("step"), 1);
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
