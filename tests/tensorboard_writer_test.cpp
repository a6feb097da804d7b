// TensorBoard event files (trainer/tensorboard_writer.h): golden bytes of each event and of the record framing,
// and the files of a run and of its resume. The event files written into $AGORA_TB_OUT are read back by
// TensorBoard itself (tests/oracle/check_tensorboard_events.py).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/scratch_files.h"
#include "trainer/tensorboard_writer.h"

namespace agora {
namespace {

namespace fs = std::filesystem;

using agora::testing::Now;
using agora::testing::ReadAll;
using agora::testing::ScratchDir;

std::string FromHex(std::string_view hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) bytes.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return bytes;
}

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

}  // namespace
}  // namespace agora
