// An append-only JSONL journal: one finished unit of work a line (a scene, an agent's round, a generation
// result), each with a unique key field. A line is written by one write(2) on an O_APPEND descriptor, so a
// process killed at any moment leaves whole lines and at most one torn last line, which Open cuts off. The index
// (key -> where its line is) is all that stays in memory; records are read back from the file when asked for,
// so a journal of 100k scenes costs its index, not its text. A resumed run skips the keys already there: nothing
// is lost (what Sync returned for is on disk) and nothing is written twice. The files users train on are written
// from the journal (temp file, fsync, rename).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace agora {

class RecordJournal {
 public:
  using Json = nlohmann::ordered_json;

  // Creates the file if missing. A torn last line is cut off (counted in torn_lines()); any other line that is
  // not a JSON object with a string `key_field`, or a repeated key, is an error naming the file and line.
  static absl::StatusOr<RecordJournal> Open(const std::filesystem::path& path, const std::string& key_field = "key");
  RecordJournal(RecordJournal&& other) noexcept;
  RecordJournal& operator=(RecordJournal&&) = delete;
  ~RecordJournal();

  bool Has(const std::string& key) const { return index_.count(key) > 0; }
  int64_t size() const { return static_cast<int64_t>(index_.size()); }
  int64_t torn_lines() const { return torn_lines_; }

  // The record of `key` (NotFound when there is none), read back from the file.
  absl::StatusOr<Json> Read(const std::string& key) const;
  // Every record in the order they were appended, read through once.
  absl::Status ForEach(const std::function<absl::Status(const Json&)>& visit) const;

  // Appends `record`, which must hold a key not yet in the journal.
  absl::Status Append(const Json& record);
  // fdatasync: the records appended so far survive a crash of the machine too.
  absl::Status Sync();

 private:
  struct Line {
    uint64_t offset = 0;
    uint64_t length = 0;  // without the newline
  };
  RecordJournal(std::filesystem::path path, std::string key_field, int fd)
      : path_(std::move(path)), key_field_(std::move(key_field)), fd_(fd) {}

  std::filesystem::path path_;
  std::string key_field_;
  int fd_ = -1;  // read and append
  std::map<std::string, Line> index_;
  uint64_t end_ = 0;  // the file's size: where the next line goes
  int64_t torn_lines_ = 0;
};

}  // namespace agora
