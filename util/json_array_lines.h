// Records as one JSON array, one record a line: the layout the seeds release their data in (Stable Alignment's
// groups, FastChat's conversations, Dromedary's records) and data/jsonl_dataset.h reads. Built record by record;
// invalid UTF-8 in a string (a sampled output cut mid-character) is replaced with U+FFFD, never thrown on.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace agora {

class JsonArrayLines {
 public:
  void Add(const nlohmann::ordered_json& record) {
    text_ += count_++ ? ",\n" : "";
    text_ += record.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::ordered_json::error_handler_t::replace);
  }
  int64_t size() const { return count_; }
  // "[\n{...},\n{...}\n]\n", or "[\n]\n" with no records.
  std::string Finish() && { return std::move(text_) + (count_ ? "\n]\n" : "]\n"); }

 private:
  std::string text_ = "[\n";
  int64_t count_ = 0;
};

}  // namespace agora
