// metrics.jsonl: one JSON object per line, the machine-readable record of a run (plotting scripts, comparisons
// between runs). A resumed run's file reads exactly like an uninterrupted run's.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace agora {

struct MetricsRecord {
  std::string kind;  // "train" | "eval"
  int64_t step = 0;
  std::vector<std::pair<std::string, double>> values;  // in the order they should appear on the line
};

// Not thread-safe: the trainer writes from its loop thread.
class MetricsLog {
 public:
  // Opens `path` for appending, creating it if missing. When resuming from a checkpoint taken at
  // `resume_step`, the records the interrupted run wrote after that checkpoint (step > resume_step) are
  // dropped first by an atomic rewrite, as are lines that are not records (a line torn by the crash).
  // resume_step < 0 = fresh start: every record already there is dropped too (an attempt killed before its first
  // checkpoint wrote them, and this run writes them again: kept, the step-0 eval would appear twice).
  static absl::StatusOr<std::unique_ptr<MetricsLog>> Open(const std::filesystem::path& path, int64_t resume_step);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Appends {"kind":..,"step":..,<values...>,"time":<unix seconds>} and flushes, so a crash loses at most the
  // line being written. Doubles are printed round-trip exact; NaN and infinities (JSON has none) as null.
  // A value named kind, step or time, or named twice, is an InvalidArgument error.
  absl::Status Write(const MetricsRecord& record);

 private:
  MetricsLog(std::filesystem::path path, std::FILE* file) : path_(std::move(path)), file_(file) {}

  std::filesystem::path path_;
  std::FILE* file_;
};

}  // namespace agora
