// Training records from a JSONL file (one record per line) or a JSON file holding one array of records (the
// layout of Stable Alignment's, FastChat's and Dromedary's released files). The file is scanned once to index and
// validate it; records are not kept in memory: GetRecord(i) reads record i back from its byte offset and parses
// it again, so a file larger than memory costs only its index (a few words per record).
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
// Other fields are ignored. Blank lines (only whitespace) are skipped silently; "\r\n" line ends are accepted.
// In a JSON array file, errors name the line where the record starts.
#pragma once

#include <cstdint>
#include <filesystem>
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

enum class BadLinePolicy { kError, kSkip };
// "error": the first malformed line fails Open. "skip": malformed lines are left out and counted.
absl::StatusOr<BadLinePolicy> ParseBadLinePolicy(std::string_view name);

class JsonlDataset {
 public:
  // Errors (and skipped lines' messages) read "PATH:LINE: what was expected", LINE 1-based.
  static absl::StatusOr<JsonlDataset> Open(const std::filesystem::path& path, RecordFormat format = RecordFormat::kAuto,
                                           const FieldMap& fields = {}, BadLinePolicy policy = BadLinePolicy::kError);

  JsonlDataset(JsonlDataset&& other) noexcept;
  JsonlDataset& operator=(JsonlDataset&& other) noexcept;
  ~JsonlDataset();

  // Record i (0 <= i < size()), read from the file and parsed now. Safe to call from several threads.
  absl::StatusOr<Record> GetRecord(int64_t i) const;
  // The same for a conversation format (messages, prompt_response, sharegpt); an error for other formats.
  absl::StatusOr<Conversation> Get(int64_t i) const;

  int64_t size() const { return static_cast<int64_t>(lines_.size()); }
  int64_t line_number(int64_t i) const { return lines_[i].number; }  // 1-based, in the file (record start)
  uint64_t offset(int64_t i) const { return lines_[i].offset; }      // byte offset of the line's first byte
  const std::filesystem::path& path() const { return path_; }
  // The format in use: kAuto resolved (still kAuto when the file has no valid record).
  RecordFormat format() const { return format_; }

  int64_t skipped_lines() const { return skipped_lines_; }
  // The first kMaxSkippedMessages skip messages, for the log.
  static constexpr int kMaxSkippedMessages = 10;
  const std::vector<std::string>& skipped_messages() const { return skipped_messages_; }

 private:
  struct Line {
    uint64_t offset;
    uint64_t length;  // without the line end
    int64_t number;
  };

  JsonlDataset() = default;
  // Indexes and validates every record; called once by Open. Resolves format_ when it is kAuto.
  absl::Status Scan(BadLinePolicy policy);
  // Validates and indexes one record's text (a line, or an element of a JSON array).
  absl::Status AddRecord(std::string_view text, uint64_t offset, int64_t line_number, BadLinePolicy policy);
  // "PATH:LINE: " for messages about a line.
  std::string Where(int64_t line_number) const;

  std::filesystem::path path_;
  FieldMap fields_;
  RecordFormat format_ = RecordFormat::kAuto;
  int fd_ = -1;
  std::vector<Line> lines_;
  int64_t skipped_lines_ = 0;
  std::vector<std::string> skipped_messages_;
};

}  // namespace agora
