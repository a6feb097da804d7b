// The training records of every format Agora reads, and the parser of one record's JSON text.
//
// Record formats (conversation formats have configurable field names, FieldMap):
//   messages:         {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
//   prompt_response:  {"prompt": "...", "response": "...", "system": "..."(optional)}
//                     -> [system,] user, assistant
//   sharegpt:         FastChat / MATRIX: {"id": ..., "conversations": [{"from": "human"|"gpt"|"system",
//                     "value": "..."}, ...]} -> messages with roles user / assistant / system
//   dromedary:        SELF-ALIGN: {"example_id": int (optional), "instruction": "...", "input": "..."(optional),
//                     "output": "..."} -> InstructionRecord
//   sandbox_groups:   Stable Alignment: {"query": "...", "responses": ["...", ...], "scores": [number, ...],
//                     "models": [...](optional, unused)} -> RatedResponses
//   preference:       DPO pairs: {"prompt": "...", "chosen": "...", "rejected": "..."} -> PreferencePair
// Other fields are ignored.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"

namespace agora {

struct Message {
  std::string role;  // "system", "user" or "assistant"
  std::string content;

  bool operator==(const Message&) const = default;
};

struct Conversation {
  std::vector<Message> messages;

  bool operator==(const Conversation&) const = default;
};

// SELF-ALIGN / Dromedary: an instruction (with optional input) and the output to train on.
struct InstructionRecord {
  int64_t example_id = 0;  // picks the meta prompt (example_id % number of prompts); absent: the record's number
  std::string instruction;
  std::string input;
  std::string output;

  bool operator==(const InstructionRecord&) const = default;
};

// Stable Alignment: the responses several agents gave to one query, each with its rating.
struct RatedResponses {
  std::string query;  // already templated (Alpaca "### Instruction:\n...\n\n### Response:")
  std::vector<std::string> responses;
  std::vector<double> scores;
  std::vector<std::string> models;  // who wrote each response, when the file says (not used in training)

  bool operator==(const RatedResponses&) const = default;
};

// A preference pair (DPO): two answers to one prompt, the first preferred.
struct PreferencePair {
  std::string prompt;
  std::string chosen;
  std::string rejected;

  bool operator==(const PreferencePair&) const = default;
};

using Record = std::variant<Conversation, InstructionRecord, RatedResponses, PreferencePair>;

enum class RecordFormat { kAuto, kMessages, kPromptResponse, kShareGpt, kDromedary, kSandboxGroups, kPreference };
// "auto", "messages", "prompt_response", "sharegpt", "dromedary", "sandbox_groups", "preference". kAuto decides
// once per file, from the first valid record, by the first of these fields it has: messages -> kMessages,
// "conversations" -> kShareGpt, "responses" -> kSandboxGroups, "chosen" -> kPreference, prompt ->
// kPromptResponse, "instruction" -> kDromedary; none -> kPromptResponse. Every record must then use that format.
absl::StatusOr<RecordFormat> ParseRecordFormat(std::string_view name);
std::string RecordFormatName(RecordFormat format);

// The JSON field names of each format (e.g. {"conversations", "from", "value"} for a ShareGPT-style file whose
// roles are already system/user/assistant).
struct FieldMap {
  std::string messages = "messages";
  std::string role = "role";
  std::string content = "content";
  std::string prompt = "prompt";
  std::string response = "response";
  std::string system = "system";  // optional; absent, null or "" means no system message
};

// One record's text (a JSON object) parsed as `format`; kAuto picks by the fields present and reports the pick in
// `detected` (may be null). `index` is the record's number among the file's valid records (Dromedary's default
// example_id). InvalidArgument says what was expected, without a file or line (the caller adds them).
absl::StatusOr<Record> ParseRecord(std::string_view text, RecordFormat format, const FieldMap& fields, int64_t index,
                                   RecordFormat* detected);

}  // namespace agora
