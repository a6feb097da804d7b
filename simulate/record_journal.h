// A simulation's journal: an append-only JSONL file, one finished unit of work (a question's scene, an agent's
// round) a line, each with a unique "key". A line is written by one write(2) on an O_APPEND descriptor, so a
// process killed at any moment leaves whole lines and at most one torn last line, which Open cuts off; the keys
// of the whole lines are the index a resumed run skips. Nothing is lost (what Sync returned for is on disk) and
// nothing is written twice. The files users train on are written from the journal (temp file, fsync, rename).
#pragma once

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace agora {

class RecordJournal {
 public:
  using Json = nlohmann::ordered_json;

  // Creates the file if missing. A torn last line is cut off (and counted in torn_lines()); any other line that
  // is not a JSON object with a string "key", or a repeated key, is an error naming the file and line.
  static absl::StatusOr<RecordJournal> Open(const std::filesystem::path& path);
  RecordJournal(RecordJournal&& other) noexcept;
  RecordJournal& operator=(RecordJournal&&) = delete;
  ~RecordJournal();

  bool Has(const std::string& key) const { return keys_.count(key) > 0; }
  const std::vector<Json>& records() const { return records_; }  // in the order they were appended
  int64_t torn_lines() const { return torn_lines_; }

  // Appends `record`, which must hold a "key" not yet in the journal.
  absl::Status Append(Json record);
  // fdatasync: the records appended so far survive a crash of the machine too.
  absl::Status Sync();

 private:
  RecordJournal(std::filesystem::path path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::filesystem::path path_;
  int fd_ = -1;
  std::set<std::string> keys_;
  std::vector<Json> records_;
  int64_t torn_lines_ = 0;
};

}  // namespace agora
