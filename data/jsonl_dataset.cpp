#include "data/jsonl_dataset.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "util/status_macros.h"

namespace agora {
namespace {

using json = nlohmann::json;

// Debian's Abseil has its own string_view; every StrCat argument below is a std::string or a literal.
std::string Quoted(const std::string& name) { return absl::StrCat("\"", name, "\""); }

std::string Got(const json& value) { return absl::StrCat(", got ", std::string(value.type_name())); }

bool IsKnownRole(const std::string& role) { return role == "system" || role == "user" || role == "assistant"; }

// The string field `name` of `object`; `what` names the object in the message ("" for the record itself).
absl::StatusOr<std::string> StringField(const json& object, const std::string& name, const std::string& what) {
  const auto it = object.find(name);
  if (it == object.end()) return absl::InvalidArgumentError(absl::StrCat(what, "expected a string field ", Quoted(name)));
  if (!it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(what, "expected a string field ", Quoted(name), Got(*it)));
  }
  return it->get<std::string>();
}

absl::StatusOr<Conversation> ParseMessages(const json& record, const FieldMap& fields) {
  const auto it = record.find(fields.messages);
  const std::string expected = absl::StrCat("expected ", Quoted(fields.messages), " to be a non-empty array of {",
                                            Quoted(fields.role), ", ", Quoted(fields.content), "} objects");
  if (it == record.end()) return absl::InvalidArgumentError(expected);
  if (!it->is_array()) return absl::InvalidArgumentError(absl::StrCat(expected, Got(*it)));
  if (it->empty()) return absl::InvalidArgumentError(absl::StrCat(expected, ", got an empty array"));
  Conversation conversation;
  for (size_t k = 0; k < it->size(); ++k) {
    const json& message = (*it)[k];
    const std::string what = absl::StrCat(fields.messages, "[", k, "]: ");
    if (!message.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(what, "expected an object with string fields ",
                                                     Quoted(fields.role), " and ", Quoted(fields.content),
                                                     Got(message)));
    }
    AGORA_ASSIGN_OR_RETURN(std::string role, StringField(message, fields.role, what));
    AGORA_ASSIGN_OR_RETURN(std::string content, StringField(message, fields.content, what));
    if (!IsKnownRole(role)) {
      return absl::InvalidArgumentError(absl::StrCat(what, "unknown role ", Quoted(role),
                                                     " (expected \"system\", \"user\" or \"assistant\")"));
    }
    conversation.messages.push_back({std::move(role), std::move(content)});
  }
  return conversation;
}

absl::StatusOr<Conversation> ParsePromptResponse(const json& record, const FieldMap& fields) {
  AGORA_ASSIGN_OR_RETURN(std::string prompt, StringField(record, fields.prompt, ""));
  AGORA_ASSIGN_OR_RETURN(std::string response, StringField(record, fields.response, ""));
  Conversation conversation;
  if (const auto it = record.find(fields.system); it != record.end() && !it->is_null()) {
    if (!it->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected ", Quoted(fields.system), " to be a string when present", Got(*it)));
    }
    if (!it->get_ref<const std::string&>().empty()) conversation.messages.push_back({"system", it->get<std::string>()});
  }
  conversation.messages.push_back({"user", std::move(prompt)});
  conversation.messages.push_back({"assistant", std::move(response)});
  return conversation;
}

// One line's record; `format` kAuto picks by the messages field and reports the pick in `detected`.
absl::StatusOr<Conversation> ParseRecord(std::string_view text, RecordFormat format, const FieldMap& fields,
                                         RecordFormat* detected) {
  json record;
  try {
    record = json::parse(text);
  } catch (const json::parse_error& e) {
    // nlohmann's message counts lines and columns within the text it was given; keep only its explanation.
    const std::string what = e.what();
    const size_t colon = what.find(": ", what.find("column"));
    return absl::InvalidArgumentError(absl::StrCat("expected a JSON object (invalid JSON at byte ", e.byte, ": ",
                                                   colon == std::string::npos ? what : what.substr(colon + 2), ")"));
  }
  if (!record.is_object()) return absl::InvalidArgumentError(absl::StrCat("expected a JSON object", Got(record)));
  if (format == RecordFormat::kAuto) {
    format = record.contains(fields.messages) ? RecordFormat::kMessages : RecordFormat::kPromptResponse;
  }
  if (detected != nullptr) *detected = format;
  return format == RecordFormat::kMessages ? ParseMessages(record, fields) : ParsePromptResponse(record, fields);
}

bool IsBlank(std::string_view text) {
  for (const char c : text) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<RecordFormat> ParseRecordFormat(std::string_view name) {
  if (name == "auto") return RecordFormat::kAuto;
  if (name == "messages") return RecordFormat::kMessages;
  if (name == "prompt_response") return RecordFormat::kPromptResponse;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown record format \"", std::string(name), "\" (expected auto, messages or prompt_response)"));
}

absl::StatusOr<BadLinePolicy> ParseBadLinePolicy(std::string_view name) {
  if (name == "error") return BadLinePolicy::kError;
  if (name == "skip") return BadLinePolicy::kSkip;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown bad-line policy \"", std::string(name), "\" (expected error or skip)"));
}

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

absl::Status JsonlDataset::Scan(BadLinePolicy policy) {
  std::string line;  // the current line so far: lines may span read buffers
  uint64_t line_offset = 0, file_offset = 0;
  int64_t line_number = 0;
  const auto finish_line = [&]() -> absl::Status {
    ++line_number;
    uint64_t length = line.size();
    if (length > 0 && line.back() == '\r') --length;
    const std::string_view text(line.data(), length);
    if (IsBlank(text)) return absl::OkStatus();
    RecordFormat detected;
    absl::StatusOr<Conversation> record = ParseRecord(text, format_, fields_, &detected);
    if (record.ok()) {
      lines_.push_back({line_offset, length, line_number});
      format_ = detected;  // the first valid record fixes kAuto for the rest of the file
      return absl::OkStatus();
    }
    std::string message = absl::StrCat(Where(line_number), std::string(record.status().message()));
    if (policy == BadLinePolicy::kError) return absl::InvalidArgumentError(message);
    ++skipped_lines_;
    if (skipped_messages_.size() < kMaxSkippedMessages) skipped_messages_.push_back(std::move(message));
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
    const char* begin = buffer.data();
    const char* const end = begin + got;
    while (begin < end) {
      const char* newline = static_cast<const char*>(std::memchr(begin, '\n', end - begin));
      const char* stop = newline == nullptr ? end : newline;
      line.append(begin, stop);
      file_offset += stop - begin;
      begin = stop;
      if (newline == nullptr) break;
      AGORA_RETURN_IF_ERROR(finish_line());
      line.clear();
      ++begin;
      line_offset = ++file_offset;
    }
  }
  if (!line.empty()) AGORA_RETURN_IF_ERROR(finish_line());  // a last line without "\n"
  return absl::OkStatus();
}

absl::StatusOr<Conversation> JsonlDataset::Get(int64_t i) const {
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
  absl::StatusOr<Conversation> record = ParseRecord(text, format_, fields_, nullptr);
  if (!record.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(Where(line.number), std::string(record.status().message())));
  }
  return record;
}

}  // namespace agora
