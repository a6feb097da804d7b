// Training records from a JSONL file (one record per line) or a JSON file holding one array of records (the
// layout of Stable Alignment's, FastChat's and Dromedary's released files). The file is scanned once to index and
// validate it; records are not kept in memory: GetRecord(i) reads record i back from its byte offset and parses
// it again, so a file larger than memory costs only its index (a few words per record).
// The records and their formats are data/record_formats.h; a record's line is parsed there.
// Blank lines (only whitespace) are skipped silently; "\r\n" line ends are accepted. In a JSON array file,
// errors name the line where the record starts.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "data/record_formats.h"

namespace agora {

enum class BadLinePolicy { kError, kSkip };
// "error": the first malformed line fails Open. "skip": malformed lines are left out and counted.
absl::StatusOr<BadLinePolicy> ParseBadLinePolicy(std::string_view name);
std::string BadLinePolicyName(BadLinePolicy policy);

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
