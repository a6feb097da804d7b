#include "trainer/run_log.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace agora {
namespace {

constexpr char kEraseLine[] = "\r\033[K";  // back to column 0, clear to the end of the line
constexpr int kMaxBarWidth = 40;
constexpr int kMinBarWidth = 10;  // narrower bars say nothing the percentage does not

std::string Timestamp() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm local{};
  localtime_r(&now, &local);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S", &local);
  return text;
}

std::string Bar(double fraction, int width) {
  const int filled = std::clamp(static_cast<int>(fraction * width), 0, width);
  std::string bar(filled, '=');
  if (filled < width) bar += '>';
  bar.resize(width, ' ');
  return absl::StrCat("[", bar, "]");
}

}  // namespace

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "-:--:--";
  const long long total = std::llround(seconds);
  return absl::StrFormat("%d:%02d:%02d", total / 3600, total / 60 % 60, total % 60);
}

std::string FormatCompactCount(double value) {
  if (!std::isfinite(value)) return absl::StrFormat("%f", value);
  // Thresholds just below 1000 and 1e6 so that rounding never prints "1000" or "1000.0k".
  if (std::abs(value) < 999.5) return absl::StrFormat("%.0f", value);
  if (std::abs(value) < 999.95e3) return absl::StrFormat("%.1fk", value / 1e3);
  return absl::StrFormat("%.2fM", value / 1e6);
}

std::string FormatGroupedCount(double value) {
  if (!std::isfinite(value)) return absl::StrFormat("%f", value);
  const std::string digits = absl::StrFormat("%.0f", std::abs(value));
  std::string grouped = value <= -0.5 ? "-" : "";
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) grouped += ',';
    grouped += digits[i];
  }
  return grouped;
}

std::optional<double> EstimateEtaSeconds(const StepReport& report, int64_t first_step) {
  const int64_t steps_done = report.step - first_step;
  if (steps_done <= 0 || report.total_steps <= 0 || !(report.elapsed_seconds > 0)) return std::nullopt;
  return report.elapsed_seconds / steps_done * std::max<int64_t>(report.total_steps - report.step, 0);
}

std::string FormatProgressLine(const StepReport& report, int width, std::optional<double> eta_seconds) {
  const std::string step = absl::StrCat("step ", report.step, "/", report.total_steps);
  const std::string stats = absl::StrFormat("| loss %.4f | lr %.3e | %s tok/s | ETA %s", report.loss, report.lr,
                                            FormatCompactCount(report.tokens_per_second),
                                            FormatDuration(eta_seconds.value_or(-1)));
  const double fraction =
      report.total_steps > 0 ? std::clamp(static_cast<double>(report.step) / report.total_steps, 0.0, 1.0) : 0.0;
  const std::string percent = absl::StrFormat("%3d%%", static_cast<int>(fraction * 100));

  const int usable = std::max(width - 1, 0);
  const int without_bar = static_cast<int>(step.size() + percent.size() + stats.size()) + 2;  // two spaces
  const int bar_width = std::min(usable - without_bar - 3, kMaxBarWidth);  // 3 = brackets + space
  std::string line = bar_width >= kMinBarWidth
                         ? absl::StrCat(step, " ", Bar(fraction, bar_width), " ", percent, " ", stats)
                         : absl::StrCat(step, " ", percent, " ", stats);
  if (static_cast<int>(line.size()) > usable) line.resize(usable);
  return line;
}

std::string FormatPlainStepLine(const StepReport& report, std::optional<double> eta_seconds) {
  return absl::StrFormat("step %d/%d | epoch %d | loss %.4f | lr %.3e | grad_norm %.4g | %s tok/s | elapsed %s | ETA %s",
                         report.step, report.total_steps, report.epoch, report.loss, report.lr, report.grad_norm,
                         FormatGroupedCount(report.tokens_per_second), FormatDuration(report.elapsed_seconds),
                         FormatDuration(eta_seconds.value_or(-1)));
}

absl::StatusOr<std::unique_ptr<RunLog>> RunLog::Open(const std::filesystem::path& log_file, bool terminal,
                                                     std::FILE* console) {
  std::FILE* file = std::fopen(log_file.c_str(), "a");
  if (file == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", log_file.string()));
  }
  return std::unique_ptr<RunLog>(new RunLog(log_file, file, terminal, console));
}

RunLog::RunLog(std::filesystem::path log_path, std::FILE* log_file, bool terminal, std::FILE* console)
    : log_path_(std::move(log_path)),
      log_file_(log_file),
      terminal_(terminal),
      console_(console) {}

RunLog::~RunLog() {
  Finish();
  std::fclose(log_file_);
}

void RunLog::Info(std::string_view message) { Message(message, message); }

void RunLog::Warning(std::string_view message) {
  const std::string text = absl::StrCat("warning: ", std::string(message));
  Message(text, text);
}

void RunLog::Step(const StepReport& report) {
  const std::optional<double> eta = EstimateEtaSeconds(report, report.first_step);
  const std::string plain = FormatPlainStepLine(report, eta);
  std::lock_guard<std::mutex> lock(mutex_);
  WriteLogLine(plain);
  if (terminal_) {
    progress_line_ = FormatProgressLine(report, TerminalWidth(), eta);
    std::fputs(absl::StrCat(kEraseLine, progress_line_).c_str(), console_);
  } else {
    std::fputs(absl::StrCat(Timestamp(), " ", plain, "\n").c_str(), console_);
  }
  std::fflush(console_);
}

void RunLog::Finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (progress_line_.empty()) return;
  std::fputs("\n", console_);
  std::fflush(console_);
  progress_line_.clear();
}

void RunLog::Message(std::string_view console_text, std::string_view log_text) {
  std::lock_guard<std::mutex> lock(mutex_);
  WriteLogLine(log_text);
  if (terminal_) {
    // Erase the progress line, print the message in its place, and draw the progress line again below it.
    std::fputs(absl::StrCat(kEraseLine, std::string(console_text), "\n", progress_line_).c_str(), console_);
  } else {
    std::fputs(absl::StrCat(Timestamp(), " ", std::string(console_text), "\n").c_str(), console_);
  }
  std::fflush(console_);
}

void RunLog::WriteLogLine(std::string_view text) {
  // Flushed per line: log.txt is what is left to read after a crash.
  const std::string line = absl::StrCat(Timestamp(), " ", std::string(text), "\n");
  if ((std::fputs(line.c_str(), log_file_) == EOF || std::fflush(log_file_) != 0) && !log_failed_) {
    log_failed_ = true;
    const std::string warning = absl::StrCat("warning: cannot write ", log_path_.string(), ": ",
                                             std::strerror(errno), "; further lines go to the console only\n");
    std::fputs(absl::StrCat(terminal_ ? kEraseLine : "", warning, progress_line_).c_str(), console_);
  }
}

int RunLog::TerminalWidth() const {
  winsize size{};
  if (::ioctl(::fileno(console_), TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  if (const char* columns = std::getenv("COLUMNS"); columns != nullptr && std::atoi(columns) > 0) {
    return std::atoi(columns);
  }
  return 80;
}

}  // namespace agora
