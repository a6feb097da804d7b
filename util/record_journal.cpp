#include "util/record_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "util/atomic_file.h"

namespace agora {

absl::StatusOr<RecordJournal> RecordJournal::Open(const std::filesystem::path& path, const std::string& key_field) {
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat(path.string(), ": ", std::strerror(errno)));
  RecordJournal journal(path, key_field, fd);
  std::ifstream in(path, std::ios::binary);
  std::string line;
  int64_t line_number = 0;
  while (std::getline(in, line)) {
    if (in.eof()) {  // no newline after it: a write cut short by a kill
      journal.torn_lines_ = 1;
      break;
    }
    ++line_number;
    const std::string where = absl::StrCat(path.string(), ":", line_number);
    const Json record = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (record.is_discarded() || !record.is_object() || !record.contains(key_field) || !record[key_field].is_string())
      return absl::DataLossError(
          absl::StrCat(where, ": not a journal record (a JSON object with a string \"", key_field, "\")"));
    const std::string key = record[key_field].get<std::string>();
    if (!journal.index_.emplace(key, Line{journal.end_, line.size()}).second)
      return absl::DataLossError(absl::StrCat(where, ": ", key_field, " '", key, "' is already in the journal"));
    journal.end_ += line.size() + 1;
  }
  if (journal.torn_lines_ > 0 && ftruncate(fd, static_cast<off_t>(journal.end_)) != 0)
    return absl::InternalError(absl::StrCat(path.string(), ": cutting the torn last line: ", std::strerror(errno)));
  return journal;
}

RecordJournal::RecordJournal(RecordJournal&& other) noexcept
    : path_(std::move(other.path_)),
      key_field_(std::move(other.key_field_)),
      fd_(std::exchange(other.fd_, -1)),
      index_(std::move(other.index_)),
      end_(other.end_),
      torn_lines_(other.torn_lines_) {}

RecordJournal::~RecordJournal() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<RecordJournal::Json> RecordJournal::Read(const std::string& key) const {
  auto it = index_.find(key);
  if (it == index_.end()) return absl::NotFoundError(absl::StrCat(path_.string(), ": no record '", key, "'"));
  std::string text(it->second.length, '\0');
  const ssize_t n = pread(fd_, text.data(), text.size(), static_cast<off_t>(it->second.offset));
  if (n != static_cast<ssize_t>(text.size()))
    return absl::DataLossError(absl::StrCat(path_.string(), ": reading record '", key, "' failed"));
  return Json::parse(text, nullptr, false);
}

absl::Status RecordJournal::ForEach(const std::function<absl::Status(const Json&)>& visit) const {
  std::ifstream in(path_, std::ios::binary);
  std::string line;
  for (uint64_t read = 0; read < end_ && std::getline(in, line); read += line.size() + 1)
    if (absl::Status s = visit(Json::parse(line, nullptr, false)); !s.ok()) return s;
  return absl::OkStatus();
}

absl::Status RecordJournal::Append(const Json& record) {
  if (!record.contains(key_field_) || !record[key_field_].is_string())
    return absl::InvalidArgumentError(absl::StrCat(path_.string(), ": a record needs a string \"", key_field_, "\""));
  const std::string key = record[key_field_].get<std::string>();
  if (Has(key)) return absl::AlreadyExistsError(absl::StrCat(path_.string(), ": '", key, "' is already there"));
  // Invalid UTF-8 (a sampled output cut mid-character) is replaced rather than refused.
  const std::string line = record.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (absl::Status s = WriteFully(fd_, line + "\n"); !s.ok())
    return absl::InternalError(absl::StrCat(path_.string(), ": ", s.message()));
  index_.emplace(key, Line{end_, line.size()});
  end_ += line.size() + 1;
  return absl::OkStatus();
}

absl::Status RecordJournal::Sync() {
  if (fdatasync(fd_) != 0) return absl::InternalError(absl::StrCat(path_.string(), ": ", std::strerror(errno)));
  return absl::OkStatus();
}

}  // namespace agora
