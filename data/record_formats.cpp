#include "data/record_formats.h"

#include <cmath>
#include <optional>
#include <utility>

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

}  // namespace

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
  } catch (const json::exception& e) {  // a number too large for a double (found by the record fuzzer)
    return absl::InvalidArgumentError(absl::StrCat("expected a JSON object (", e.what(), ")"));
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

}  // namespace agora
