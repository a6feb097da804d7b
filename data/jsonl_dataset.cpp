#include "data/jsonl_dataset.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace agora {
namespace {

bool IsBlank(std::string_view text) {
  for (const char c : text) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<BadLinePolicy> ParseBadLinePolicy(std::string_view name) {
  if (name == "error") return BadLinePolicy::kError;
  if (name == "skip") return BadLinePolicy::kSkip;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown bad-line policy \"", std::string(name), "\" (expected error or skip)"));
}

std::string BadLinePolicyName(BadLinePolicy policy) { return policy == BadLinePolicy::kError ? "error" : "skip"; }

absl::StatusOr<JsonlDataset> JsonlDataset::Open(const std::filesystem::path& path, RecordFormat format,
                                                const FieldMap& fields, BadLinePolicy policy) {
  JsonlDataset dataset;
  dataset.path_ = path;
  dataset.fields_ = fields;
  dataset.format_ = format;
  dataset.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (dataset.fd_ < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", path.string()));
  AGORA_RETURN_IF_ERROR(dataset.Scan(policy));
  return dataset;
}

JsonlDataset::JsonlDataset(JsonlDataset&& other) noexcept { *this = std::move(other); }

JsonlDataset& JsonlDataset::operator=(JsonlDataset&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fields_ = std::move(other.fields_);
    format_ = other.format_;
    fd_ = std::exchange(other.fd_, -1);
    lines_ = std::move(other.lines_);
    skipped_lines_ = other.skipped_lines_;
    skipped_messages_ = std::move(other.skipped_messages_);
  }
  return *this;
}

JsonlDataset::~JsonlDataset() {
  if (fd_ >= 0) ::close(fd_);
}

std::string JsonlDataset::Where(int64_t line_number) const {
  return absl::StrCat(path_.string(), ":", line_number, ": ");
}

absl::Status JsonlDataset::AddRecord(std::string_view text, uint64_t offset, int64_t line_number,
                                     BadLinePolicy policy) {
  RecordFormat detected;
  absl::StatusOr<Record> record = ParseRecord(text, format_, fields_, size(), &detected);
  if (record.ok()) {
    lines_.push_back({offset, text.size(), line_number});
    format_ = detected;  // the first valid record fixes kAuto for the rest of the file
    return absl::OkStatus();
  }
  std::string message = absl::StrCat(Where(line_number), std::string(record.status().message()));
  if (policy == BadLinePolicy::kError) return absl::InvalidArgumentError(message);
  ++skipped_lines_;
  if (skipped_messages_.size() < kMaxSkippedMessages) skipped_messages_.push_back(std::move(message));
  return absl::OkStatus();
}

// Both layouts are read in one pass over 1 MiB buffers. JSONL: every non-blank line is a record. A JSON array
// (the first non-blank byte is '['): a small state machine (depth, inside a string, after a backslash) finds
// each top-level element; elements must be objects.
absl::Status JsonlDataset::Scan(BadLinePolicy policy) {
  enum class Layout { kUnknown, kLines, kArray, kArrayClosed };
  Layout layout = Layout::kUnknown;
  std::string current;  // the current line (JSONL) or element (array) so far
  uint64_t current_offset = 0, file_offset = 0;
  int64_t line_number = 1, current_line = 1;
  int depth = 0;  // array layout: 1 inside the array, 2+ inside an element
  bool in_string = false, escaped = false;

  const auto finish_line = [&]() -> absl::Status {
    uint64_t length = current.size();
    if (length > 0 && current.back() == '\r') --length;
    const std::string_view text(current.data(), length);
    if (IsBlank(text)) return absl::OkStatus();
    return AddRecord(text, current_offset, current_line, policy);
  };
  const auto array_error = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(Where(line_number), what));
  };
  // One byte of a JSON array file.
  const auto array_byte = [&](char c) -> absl::Status {
    if (depth >= 2) {  // inside an element
      current.push_back(c);
      if (in_string) {
        if (escaped) escaped = false;
        else if (c == '\\') escaped = true;
        else if (c == '"') in_string = false;
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && --depth == 1) {
        AGORA_RETURN_IF_ERROR(AddRecord(current, current_offset, current_line, policy));
        current.clear();
      }
      return absl::OkStatus();
    }
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) || c == ',') return absl::OkStatus();
    if (layout == Layout::kArrayClosed) return array_error("unexpected text after the closing ']' of the array");
    if (c == ']') {
      layout = Layout::kArrayClosed;
      return absl::OkStatus();
    }
    if (c != '{') return array_error(absl::StrCat("expected a JSON object as array element, got '", std::string(1, c), "'"));
    depth = 2;
    current.assign(1, c);
    current_offset = file_offset;
    current_line = line_number;
    return absl::OkStatus();
  };

  std::string buffer(1 << 20, '\0');
  while (true) {
    const ssize_t got = ::read(fd_, buffer.data(), buffer.size());
    if (got < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, absl::StrCat("cannot read ", path_.string()));
    }
    if (got == 0) break;
    for (const char* p = buffer.data(); p < buffer.data() + got; ++p, ++file_offset) {
      const char c = *p;
      if (layout == Layout::kUnknown) {
        if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
          if (c == '\n') ++line_number;
          continue;
        }
        layout = c == '[' ? Layout::kArray : Layout::kLines;
        if (layout == Layout::kArray) {
          depth = 1;
          continue;
        }
        current_offset = file_offset;
        current_line = line_number;
      }
      if (layout == Layout::kLines) {
        if (c == '\n') {
          AGORA_RETURN_IF_ERROR(finish_line());
          current.clear();
          current_offset = file_offset + 1;
          current_line = ++line_number;
        } else {
          current.push_back(c);
        }
        continue;
      }
      AGORA_RETURN_IF_ERROR(array_byte(c));
      if (c == '\n') ++line_number;
    }
  }
  if (layout == Layout::kLines && !current.empty()) AGORA_RETURN_IF_ERROR(finish_line());  // no final "\n"
  if (layout == Layout::kArray) {
    return array_error(depth >= 2 ? "the file ends inside an array element" : "the file ends before the array's ']'");
  }
  return absl::OkStatus();
}

absl::StatusOr<Record> JsonlDataset::GetRecord(int64_t i) const {
  if (i < 0 || i >= size()) {
    return absl::OutOfRangeError(absl::StrCat(path_.string(), ": record ", i, " of ", size()));
  }
  const Line& line = lines_[i];
  std::string text(line.length, '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t got = ::pread(fd_, text.data() + done, text.size() - done, line.offset + done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return absl::ErrnoToStatus(errno, absl::StrCat(Where(line.number), "cannot read"));
    if (got == 0) return absl::DataLossError(absl::StrCat(Where(line.number), "the file shrank since it was indexed"));
    done += got;
  }
  absl::StatusOr<Record> record = ParseRecord(text, format_, fields_, i, nullptr);
  if (!record.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(Where(line.number), std::string(record.status().message())));
  }
  return record;
}

absl::StatusOr<Conversation> JsonlDataset::Get(int64_t i) const {
  AGORA_ASSIGN_OR_RETURN(Record record, GetRecord(i));
  if (Conversation* conversation = std::get_if<Conversation>(&record)) return std::move(*conversation);
  return absl::FailedPreconditionError(
      absl::StrCat(Where(line_number(i)), "the record is not a conversation (messages, prompt_response or sharegpt)"));
}

}  // namespace agora
