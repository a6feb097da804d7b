#include "trainer/tensorboard_writer.h"

#include <unistd.h>

#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "util/crc32c.h"
#include "util/protobuf_wire.h"
#include "util/status_macros.h"

namespace agora {
namespace tensorboard {
namespace {

using protowire::PutBytesField;
using protowire::PutFixed32;
using protowire::PutFixed64;
using protowire::PutKey;
using protowire::PutVarint;
using protowire::WireType;

// Every event starts with wall_time (1) and step (2). Like protobuf's own serializer, a zero step is left
// out and a negative one is a 10-byte varint, so the bytes equal what event_pb2 writes (the golden tests).
std::string EventHeader(double wall_time, int64_t step) {
  std::string event;
  PutKey(event, 1, WireType::kFixed64);
  PutFixed64(event, std::bit_cast<uint64_t>(wall_time));
  if (step != 0) {
    PutKey(event, 2, WireType::kVarint);
    PutVarint(event, static_cast<uint64_t>(step));
  }
  return event;
}

uint32_t MaskedCrc32c(std::string_view data) {
  const uint32_t crc = Crc32c(data);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

}  // namespace

std::string EncodeFileVersionEvent(double wall_time) {
  std::string event = EventHeader(wall_time, 0);
  PutBytesField(event, 3, "brain.Event:2");
  return event;
}

std::string EncodeScalarEvent(std::string_view tag, float value, int64_t step, double wall_time) {
  std::string summary_value;
  PutBytesField(summary_value, 1, tag);
  PutKey(summary_value, 2, WireType::kFixed32);
  PutFixed32(summary_value, std::bit_cast<uint32_t>(value));
  std::string summary;
  PutBytesField(summary, 1, summary_value);
  std::string event = EventHeader(wall_time, step);
  PutBytesField(event, 5, summary);
  return event;
}

std::string EncodeSessionStartEvent(int64_t step, double wall_time) {
  constexpr uint64_t kStart = 1;  // SessionLog.SessionStatus.START
  std::string session_log;
  PutKey(session_log, 1, WireType::kVarint);
  PutVarint(session_log, kStart);
  std::string event = EventHeader(wall_time, step);
  PutBytesField(event, 7, session_log);
  return event;
}

// TFRecord framing: little-endian length and CRCs, the same byte order as protobuf's fixed-width fields.
std::string FrameRecord(std::string_view data) {
  std::string record;
  PutFixed64(record, data.size());
  PutFixed32(record, MaskedCrc32c(record));
  record.append(data);
  PutFixed32(record, MaskedCrc32c(data));
  return record;
}

}  // namespace tensorboard

namespace {

double WallTimeNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

absl::Status ErrnoError(std::string_view what, const std::filesystem::path& path, int err) {
  return absl::Status(absl::ErrnoToStatusCode(err),
                      absl::StrCat(std::string(what), " ", path.string(), ": ", std::strerror(err)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<TensorBoardWriter>> TensorBoardWriter::Create(const std::filesystem::path& dir,
                                                                             int64_t resume_step) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return absl::InternalError(absl::StrCat("cannot create ", dir.string(), ": ", error.message()));

  // TensorBoard reads a folder's event files in name order, and the timestamp leads the name, so a resumed
  // run's file comes after the interrupted run's. Two writers in one second of one process (tests) get a
  // suffix, which also sorts after the bare name; "x" (O_EXCL) keeps two writers off one file.
  const std::string base = absl::StrCat("events.out.tfevents.",
                                        std::chrono::duration_cast<std::chrono::seconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count(),
                                        ".", HostName(), ".", ::getpid());
  for (int suffix = 0; suffix < 1000; ++suffix) {
    std::filesystem::path path = dir / (suffix == 0 ? base : absl::StrCat(base, ".", suffix));
    std::FILE* file = std::fopen(path.c_str(), "wbx");
    if (file == nullptr) {
      if (errno == EEXIST) continue;
      return ErrnoError("cannot create", path, errno);
    }
    std::unique_ptr<TensorBoardWriter> writer(new TensorBoardWriter(std::move(path), file));
    AGORA_RETURN_IF_ERROR(writer->WriteRecord(tensorboard::EncodeFileVersionEvent(WallTimeNow())));
    if (resume_step >= 0) {
      AGORA_RETURN_IF_ERROR(
          writer->WriteRecord(tensorboard::EncodeSessionStartEvent(resume_step + 1, WallTimeNow())));
    }
    AGORA_RETURN_IF_ERROR(writer->Flush());
    return writer;
  }
  return absl::AlreadyExistsError(absl::StrCat("no free event file name for ", (dir / base).string()));
}

TensorBoardWriter::~TensorBoardWriter() { std::fclose(file_); }

absl::Status TensorBoardWriter::AddScalar(std::string_view tag, double value, int64_t step) {
  return WriteRecord(tensorboard::EncodeScalarEvent(tag, static_cast<float>(value), step, WallTimeNow()));
}

absl::Status TensorBoardWriter::Flush() {
  if (std::fflush(file_) != 0) return ErrnoError("cannot write", path_, errno);
  return absl::OkStatus();
}

absl::Status TensorBoardWriter::WriteRecord(std::string_view data) {
  const std::string record = tensorboard::FrameRecord(data);
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size()) {
    return ErrnoError("cannot write", path_, errno);
  }
  return absl::OkStatus();
}

}  // namespace agora
