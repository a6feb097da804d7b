#include "simulate/record_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "util/atomic_file.h"
#include "util/read_file.h"

namespace agora {

absl::StatusOr<RecordJournal> RecordJournal::Open(const std::filesystem::path& path) {
  std::string text;
  if (std::filesystem::exists(path)) {
    absl::StatusOr<std::string> read = ReadFile(path);
    if (!read.ok()) return read.status();
    text = *std::move(read);
  }
  // Whole lines end with '\n'; what follows the last one is a torn write.
  const size_t whole = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  const bool torn = whole < text.size();
  if (torn && truncate(path.c_str(), static_cast<off_t>(whole)) != 0)
    return absl::InternalError(absl::StrCat(path.string(), ": cutting the torn last line: ", std::strerror(errno)));
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat(path.string(), ": ", std::strerror(errno)));
  RecordJournal journal(path, fd);
  journal.torn_lines_ = torn ? 1 : 0;
  int64_t line_number = 0;
  for (size_t begin = 0; begin < whole;) {
    const size_t end = text.find('\n', begin);
    ++line_number;
    const absl::string_view line(text.data() + begin, end - begin);
    begin = end + 1;
    const std::string where = absl::StrCat(path.string(), ":", line_number);
    Json record = Json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (record.is_discarded() || !record.is_object() || !record.contains("key") || !record["key"].is_string())
      return absl::DataLossError(absl::StrCat(where, ": not a journal record (a JSON object with a string \"key\")"));
    const std::string key = record["key"].get<std::string>();
    if (!journal.keys_.insert(key).second)
      return absl::DataLossError(absl::StrCat(where, ": key '", key, "' is already in the journal"));
    journal.records_.push_back(std::move(record));
  }
  return journal;
}

RecordJournal::RecordJournal(RecordJournal&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      keys_(std::move(other.keys_)),
      records_(std::move(other.records_)),
      torn_lines_(other.torn_lines_) {}

RecordJournal::~RecordJournal() {
  if (fd_ >= 0) close(fd_);
}

absl::Status RecordJournal::Append(Json record) {
  if (!record.contains("key") || !record["key"].is_string())
    return absl::InvalidArgumentError(absl::StrCat(path_.string(), ": a record needs a string \"key\""));
  const std::string key = record["key"].get<std::string>();
  if (Has(key)) return absl::AlreadyExistsError(absl::StrCat(path_.string(), ": key '", key, "' is already there"));
  const std::string line = record.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  if (absl::Status s = WriteFully(fd_, line); !s.ok())
    return absl::InternalError(absl::StrCat(path_.string(), ": ", s.message()));
  keys_.insert(key);
  records_.push_back(std::move(record));
  return absl::OkStatus();
}

absl::Status RecordJournal::Sync() {
  if (fdatasync(fd_) != 0) return absl::InternalError(absl::StrCat(path_.string(), ": ", std::strerror(errno)));
  return absl::OkStatus();
}

}  // namespace agora
