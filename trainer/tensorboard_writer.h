// TensorBoard event files written without libprotobuf (whose copy inside libtorch we must not clash with): the
// few Event/Summary fields a scalar needs are hand-encoded and framed as TFRecords.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace agora {

// One run's event file. Not thread-safe: the trainer logs from its loop thread.
class TensorBoardWriter {
 public:
  // Creates `dir` if needed and a new file events.out.tfevents.<unix seconds>.<hostname>.<pid> (with a ".<n>"
  // suffix if that name is taken) whose first record is file_version "brain.Event:2". A resumed run passes the
  // step of the checkpoint it resumed from: it creates a new file in the same dir and records a SessionLog
  // START at resume_step + 1, so TensorBoard drops what the interrupted run logged after that checkpoint and
  // shows the resumed run's values there instead. resume_step < 0 = fresh start.
  static absl::StatusOr<std::unique_ptr<TensorBoardWriter>> Create(const std::filesystem::path& dir,
                                                                   int64_t resume_step = -1);
  ~TensorBoardWriter();  // flushes and closes; errors here are lost, so call Flush() to see them
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // TensorBoard stores scalars as float32; wall_time is now.
  absl::Status AddScalar(std::string_view tag, double value, int64_t step);
  // Hands buffered records to the OS (fflush; no fsync: a lost tail of a curve is not worth a disk sync).
  absl::Status Flush();

  const std::filesystem::path& path() const { return path_; }

 private:
  TensorBoardWriter(std::filesystem::path path, std::FILE* file) : path_(std::move(path)), file_(file) {}
  absl::Status WriteRecord(std::string_view data);

  std::filesystem::path path_;
  std::FILE* file_;
};

// The encodings, exposed for golden-bytes tests.
namespace tensorboard {

// Event{wall_time=1, step=2, file_version=3}.
std::string EncodeFileVersionEvent(double wall_time);
// Event{wall_time=1, step=2, summary=5 {value=1 {tag=1, simple_value=2}}}.
std::string EncodeScalarEvent(std::string_view tag, float value, int64_t step, double wall_time);
// Event{wall_time=1, step=2, session_log=7 {status=1: START}}.
std::string EncodeSessionStartEvent(int64_t step, double wall_time);
// TFRecord framing: uint64 length | masked crc32c(length) | data | masked crc32c(data), little-endian.
std::string FrameRecord(std::string_view data);

}  // namespace tensorboard
}  // namespace agora
