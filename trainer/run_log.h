// What a person watching a run sees: the console (a live progress line on a terminal, plain lines elsewhere)
// and log.txt in the run folder (always plain, timestamped lines).
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace agora {

struct StepReport {
  int64_t step = 0;  // optimizer steps done, counting those of the run this one resumed
  int64_t total_steps = 0;
  int64_t epoch = 0;
  double loss = 0, lr = 0, grad_norm = 0, tokens_per_second = 0;
  double elapsed_seconds = 0;  // since this process started training
  int64_t first_step = 0;      // steps done before this process started (where a resumed run began)
};

// The formatting, exposed for tests.
// H:MM:SS (hours unbounded); "-:--:--" when unknown (negative or not finite).
std::string FormatDuration(double seconds);
// 950, 12.3k, 4.56M: short enough for the progress line.
std::string FormatCompactCount(double value);
// 1,234,568: exact enough for logs.
std::string FormatGroupedCount(double value);
// Remaining time from this process's own pace: elapsed_seconds over the steps since `first_step`. Unknown
// before the first step of this process, or without a total.
std::optional<double> EstimateEtaSeconds(const StepReport& report, int64_t first_step);
// The terminal line, at most width - 1 columns (writing the last column makes some terminals wrap, which
// breaks redrawing in place): "step 120/1000 [=====>    ]  12% | loss 2.3456 | lr 2.000e-04 | 12.3k tok/s |
// ETA 0:12:34". The bar takes the room left (up to 40 columns) and is dropped on a narrow terminal.
std::string FormatProgressLine(const StepReport& report, int width, std::optional<double> eta_seconds);
// The line for logs and non-terminals: "step 120/1000 | epoch 1 | loss 2.3456 | lr 2.000e-04 |
// grad_norm 1.234 | 12,345 tok/s | elapsed 0:01:23 | ETA 0:12:34".
std::string FormatPlainStepLine(const StepReport& report, std::optional<double> eta_seconds);

// Thread-safe: a checkpoint or data thread may report while the loop draws progress.
class RunLog {
 public:
  // `log_file` is appended to (created if missing). `terminal` says whether `console` is a terminal (the
  // trainer passes isatty(2)): then Step() redraws one progress line in place and Info()/Warning() print
  // above it; otherwise every call prints a plain timestamped line.
  static absl::StatusOr<std::unique_ptr<RunLog>> Open(const std::filesystem::path& log_file, bool terminal,
                                                      std::FILE* console = stderr);
  ~RunLog();  // Finish(), then closes log_file
  RunLog(const RunLog&) = delete;
  RunLog& operator=(const RunLog&) = delete;

  void Info(std::string_view message);
  void Warning(std::string_view message);
  void Step(const StepReport& report);
  // Ends the progress line (a newline) on a terminal, so later output starts on its own line.
  void Finish();

 private:
  RunLog(std::filesystem::path log_path, std::FILE* log_file, bool terminal, std::FILE* console);
  void Message(std::string_view console_text, std::string_view log_text);
  void WriteLogLine(std::string_view text);
  int TerminalWidth() const;

  std::mutex mutex_;
  const std::filesystem::path log_path_;
  std::FILE* const log_file_;
  const bool terminal_;
  std::FILE* const console_;
  std::string progress_line_;  // what the terminal shows below the messages; empty when none
  bool log_failed_ = false;    // report a broken log.txt once, not on every line
};

}  // namespace agora
