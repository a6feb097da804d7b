#include "trainer/metrics_log.h"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "util/atomic_file.h"
#include "util/read_file.h"
#include "util/status_macros.h"

namespace agora {
namespace {

absl::Status ErrnoError(std::string_view what, const std::filesystem::path& path, int err) {
  return absl::Status(absl::ErrnoToStatusCode(err),
                      absl::StrCat(std::string(what), " ", path.string(), ": ", std::strerror(err)));
}

// The complete lines of `contents` whose record has step <= resume_step. Text after the last newline is a
// record the crash cut short; lines that do not parse as records are damage of the same kind.
std::string RecordsThrough(std::string_view contents, int64_t resume_step) {
  std::string kept;
  for (size_t end; (end = contents.find('\n')) != std::string_view::npos; contents.remove_prefix(end + 1)) {
    const std::string_view line = contents.substr(0, end);
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!record.is_object()) continue;
    const auto step = record.find("step");
    if (step == record.end() || !step->is_number_integer() || step->get<int64_t>() > resume_step) continue;
    kept.append(line).push_back('\n');
  }
  return kept;
}

// Drops what the interrupted run logged after its last checkpoint, so the resumed run's records follow on.
absl::Status TruncateAfter(const std::filesystem::path& path, int64_t resume_step) {
  absl::StatusOr<std::string> contents = ReadFile(path);
  if (absl::IsNotFound(contents.status())) return absl::OkStatus();
  if (!contents.ok()) return contents.status();
  const std::string kept = RecordsThrough(*contents, resume_step);
  if (kept == *contents) return absl::OkStatus();
  return WriteStringAtomically(path, kept);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsLog>> MetricsLog::Open(const std::filesystem::path& path, int64_t resume_step) {
  AGORA_RETURN_IF_ERROR(TruncateAfter(path, resume_step));
  // "a+": appends, and can read the last byte back.
  std::FILE* file = std::fopen(path.c_str(), "a+b");
  if (file == nullptr) return ErrnoError("cannot open", path, errno);
  std::unique_ptr<MetricsLog> log(new MetricsLog(path, file));
  // A fresh run appending to a file whose last line a crash cut short starts on a new line, so its own
  // records stay parseable.
  const bool torn_last_line = std::fseek(file, -1, SEEK_END) == 0 && std::fgetc(file) != '\n';
  // C requires a seek between reading and writing a "+" stream.
  if (std::fseek(file, 0, SEEK_END) != 0) return ErrnoError("cannot seek in", path, errno);
  if (torn_last_line && (std::fputc('\n', file) == EOF || std::fflush(file) != 0)) {
    return ErrnoError("cannot write", path, errno);
  }
  return log;
}

MetricsLog::~MetricsLog() { std::fclose(file_); }

absl::Status MetricsLog::Write(const MetricsRecord& record) {
  nlohmann::ordered_json line = {{"kind", record.kind}, {"step", record.step}};
  for (const auto& [name, value] : record.values) {
    if (name == "time" || line.contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat("metrics record at step ", record.step,
                                                     ": value name \"", name, "\" is reserved or repeated"));
    }
    line[name] = std::isfinite(value) ? nlohmann::ordered_json(value) : nlohmann::ordered_json(nullptr);
  }
  line["time"] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  // Invalid UTF-8 in a name is replaced rather than thrown: a metric's name is not worth a failed run.
  const std::string text = line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  // One fwrite per line, then flush: a crash tears at most this line, which a resume drops.
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size() || std::fflush(file_) != 0) {
    return ErrnoError("cannot write", path_, errno);
  }
  return absl::OkStatus();
}

}  // namespace agora
