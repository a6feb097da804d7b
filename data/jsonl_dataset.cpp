#include "data/jsonl_dataset.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>
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

// ShareGPT / FastChat speakers, as Agora's roles.
std::optional<std::string> ShareGptRole(const std::string& from) {
  if (from == "human" || from == "user") return "user";
  if (from == "gpt" || from == "assistant") return "assistant";
  if (from == "system") return "system";
  return std::nullopt;
}

// The string field `name` of `object`; `what` names the object in the message ("" for the record itself).
absl::StatusOr<std::string> StringField(const json& object, const std::string& name, const std::string& what) {
  const auto it = object.find(name);
  if (it == object.end()) return absl::InvalidArgumentError(absl::StrCat(what, "expected a string field ", Quoted(name)));
  if (!it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(what, "expected a string field ", Quoted(name), Got(*it)));
  }
  return it->get<std::string>();
}

// An optional string field: absent or null reads as "".
absl::StatusOr<std::string> OptionalStringField(const json& object, const std::string& name) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return std::string();
  if (!it->is_string())
    return absl::InvalidArgumentError(absl::StrCat("expected ", Quoted(name), " to be a string when present", Got(*it)));
  return it->get<std::string>();
}

// `sharegpt`: FastChat's speaker names; otherwise Agora's own role names.
absl::StatusOr<Conversation> ParseMessages(const json& record, const FieldMap& fields, bool sharegpt) {
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
    std::optional<std::string> known =
        sharegpt ? ShareGptRole(role)
                 : (role == "system" || role == "user" || role == "assistant" ? std::optional(role) : std::nullopt);
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, "unknown role ", Quoted(role),
          sharegpt ? " (expected \"human\", \"gpt\" or \"system\")" : " (expected \"system\", \"user\" or \"assistant\")"));
    }
    conversation.messages.push_back({*std::move(known), std::move(content)});
  }
  return conversation;
}

absl::StatusOr<Conversation> ParsePromptResponse(const json& record, const FieldMap& fields) {
  AGORA_ASSIGN_OR_RETURN(std::string prompt, StringField(record, fields.prompt, ""));
  AGORA_ASSIGN_OR_RETURN(std::string response, StringField(record, fields.response, ""));
  Conversation conversation;
  AGORA_ASSIGN_OR_RETURN(std::string system, OptionalStringField(record, fields.system));
  if (!system.empty()) conversation.messages.push_back({"system", std::move(system)});
  conversation.messages.push_back({"user", std::move(prompt)});
  conversation.messages.push_back({"assistant", std::move(response)});
  return conversation;
}

absl::StatusOr<InstructionRecord> ParseDromedary(const json& record, int64_t index) {
  InstructionRecord out;
  out.example_id = index;
  if (const auto it = record.find("example_id"); it != record.end() && !it->is_null()) {
    if (!it->is_number_integer())
      return absl::InvalidArgumentError(absl::StrCat("expected \"example_id\" to be an integer when present", Got(*it)));
    out.example_id = it->get<int64_t>();
  }
  AGORA_ASSIGN_OR_RETURN(out.instruction, StringField(record, "instruction", ""));
  AGORA_ASSIGN_OR_RETURN(out.input, OptionalStringField(record, "input"));
  AGORA_ASSIGN_OR_RETURN(out.output, StringField(record, "output", ""));
  return out;
}

absl::StatusOr<RatedResponses> ParseSandboxGroup(const json& record) {
  RatedResponses out;
  AGORA_ASSIGN_OR_RETURN(out.query, StringField(record, "query", ""));
  const auto responses = record.find("responses");
  if (responses == record.end() || !responses->is_array() || responses->empty())
    return absl::InvalidArgumentError(absl::StrCat("expected \"responses\" to be a non-empty array of strings",
                                                   responses == record.end() ? "" : Got(*responses)));
  const auto scores = record.find("scores");
  if (scores == record.end() || !scores->is_array() || scores->size() != responses->size())
    return absl::InvalidArgumentError(absl::StrCat(
        "expected \"scores\" to be an array of ", responses->size(), " numbers, one per response",
        scores == record.end() ? "" : (scores->is_array() ? absl::StrCat(", got ", scores->size()) : Got(*scores))));
  for (size_t k = 0; k < responses->size(); ++k) {
    const json& response = (*responses)[k];
    const json& score = (*scores)[k];
    if (!response.is_string())
      return absl::InvalidArgumentError(absl::StrCat("responses[", k, "]: expected a string", Got(response)));
    if (!score.is_number() || !std::isfinite(score.get<double>()))
      return absl::InvalidArgumentError(absl::StrCat("scores[", k, "]: expected a finite number",
                                                     score.is_number() ? "" : Got(score)));
    out.responses.push_back(response.get<std::string>());
    out.scores.push_back(score.get<double>());
  }
  if (const auto models = record.find("models"); models != record.end() && !models->is_null()) {
    if (!models->is_array() || models->size() != responses->size())
      return absl::InvalidArgumentError(absl::StrCat("expected \"models\" to be an array of ", responses->size(),
                                                     " strings when present", Got(*models)));
    for (size_t k = 0; k < models->size(); ++k) {
      if (!(*models)[k].is_string())
        return absl::InvalidArgumentError(absl::StrCat("models[", k, "]: expected a string", Got((*models)[k])));
      out.models.push_back((*models)[k].get<std::string>());
    }
  }
  return out;
}

absl::StatusOr<PreferencePair> ParsePreference(const json& record) {
  PreferencePair out;
  AGORA_ASSIGN_OR_RETURN(out.prompt, StringField(record, "prompt", ""));
  AGORA_ASSIGN_OR_RETURN(out.chosen, StringField(record, "chosen", ""));
  AGORA_ASSIGN_OR_RETURN(out.rejected, StringField(record, "rejected", ""));
  return out;
}

RecordFormat DetectFormat(const json& record, const FieldMap& fields) {
  if (record.contains(fields.messages)) return RecordFormat::kMessages;
  if (record.contains("conversations")) return RecordFormat::kShareGpt;
  if (record.contains("responses")) return RecordFormat::kSandboxGroups;
  if (record.contains("chosen")) return RecordFormat::kPreference;
  if (record.contains(fields.prompt)) return RecordFormat::kPromptResponse;
  if (record.contains("instruction")) return RecordFormat::kDromedary;
  return RecordFormat::kPromptResponse;
}

// One record's text; `format` kAuto picks by the fields present and reports the pick in `detected`. `index` is
// the record's number among the file's valid records (Dromedary's default example_id).
absl::StatusOr<Record> ParseRecord(std::string_view text, RecordFormat format, const FieldMap& fields, int64_t index,
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
  if (format == RecordFormat::kAuto) format = DetectFormat(record, fields);
  if (detected != nullptr) *detected = format;
  switch (format) {
    case RecordFormat::kMessages: return ParseMessages(record, fields, /*sharegpt=*/false);
    case RecordFormat::kShareGpt:
      return ParseMessages(record, FieldMap{.messages = "conversations", .role = "from", .content = "value"},
                           /*sharegpt=*/true);
    case RecordFormat::kPromptResponse: return ParsePromptResponse(record, fields);
    case RecordFormat::kDromedary: return ParseDromedary(record, index);
    case RecordFormat::kSandboxGroups: return ParseSandboxGroup(record);
    case RecordFormat::kPreference: return ParsePreference(record);
    case RecordFormat::kAuto: break;
  }
  return absl::InternalError("unresolved record format");
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
  if (name == "sharegpt") return RecordFormat::kShareGpt;
  if (name == "dromedary") return RecordFormat::kDromedary;
  if (name == "sandbox_groups") return RecordFormat::kSandboxGroups;
  if (name == "preference") return RecordFormat::kPreference;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown record format \"", std::string(name),
      "\" (expected auto, messages, prompt_response, sharegpt, dromedary, sandbox_groups or preference)"));
}

std::string RecordFormatName(RecordFormat format) {
  switch (format) {
    case RecordFormat::kAuto: return "auto";
    case RecordFormat::kMessages: return "messages";
    case RecordFormat::kPromptResponse: return "prompt_response";
    case RecordFormat::kShareGpt: return "sharegpt";
    case RecordFormat::kDromedary: return "dromedary";
    case RecordFormat::kSandboxGroups: return "sandbox_groups";
    case RecordFormat::kPreference: return "preference";
  }
  return "?";
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
