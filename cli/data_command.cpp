// agora data sandbox-to-groups --out FILE [--self_critic_ratio R] [--realignment_ratio R] [--seed S] LOG...
// Stable Alignment's data construction (data/sandbox_groups.h): the sandbox's interaction logs (files, or folders
// searched for *.json / *.jsonl, in sorted order) become the grouped training file that
// objective=stable_alignment reads (format sandbox_groups). The file is written atomically.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "data/sandbox_groups.h"
#include "util/atomic_file.h"

ABSL_DECLARE_FLAG(std::string, out);
ABSL_DECLARE_FLAG(uint64_t, seed);
ABSL_FLAG(double, self_critic_ratio, 0.1, "data sandbox-to-groups: fraction of Self-Critic entries kept");
ABSL_FLAG(double, realignment_ratio, 0.1, "data sandbox-to-groups: fraction of Realignment entries kept");

namespace agora::cli {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> LogFiles(const std::vector<std::string>& args) {
  std::vector<fs::path> files;
  for (const std::string& arg : args) {
    if (!fs::is_directory(arg)) {
      files.push_back(arg);
      continue;
    }
    std::vector<fs::path> found;
    for (const auto& entry : fs::recursive_directory_iterator(arg)) {
      const std::string ext = entry.path().extension().string();
      if (entry.is_regular_file() && (ext == ".json" || ext == ".jsonl")) found.push_back(entry.path());
    }
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

}  // namespace

int RunData(const std::vector<char*>& positional_args) {
  constexpr char kUsage[] =
      "usage: agora data sandbox-to-groups --out FILE [--self_critic_ratio R] [--realignment_ratio R] [--seed S] "
      "LOG_FILE_OR_FOLDER...";
  std::vector<std::string> args(positional_args.begin() + 1, positional_args.end());
  if (args.empty() || args[0] != "sandbox-to-groups" || args.size() < 2 || absl::GetFlag(FLAGS_out).empty()) {
    std::fprintf(stderr, "%s\n", kUsage);
    return 2;
  }
  const double critic = absl::GetFlag(FLAGS_self_critic_ratio), realign = absl::GetFlag(FLAGS_realignment_ratio);
  if (!(critic >= 0 && critic <= 1 && realign >= 0 && realign <= 1)) {
    std::fprintf(stderr, "agora data: --self_critic_ratio and --realignment_ratio must be within [0, 1]\n");
    return 2;
  }
  const std::vector<fs::path> logs = LogFiles({args.begin() + 1, args.end()});
  if (logs.empty()) {
    std::fprintf(stderr, "agora data: no .json or .jsonl log file found\n");
    return 1;
  }
  SandboxConversionStats stats;
  absl::StatusOr<std::vector<RatedResponses>> groups =
      SandboxLogsToGroups(logs, {critic, realign, absl::GetFlag(FLAGS_seed)}, &stats);
  absl::Status written = groups.ok() ? WriteStringAtomically(absl::GetFlag(FLAGS_out), SandboxGroupsToJson(*groups))
                                     : groups.status();
  if (!written.ok()) {
    std::fprintf(stderr, "agora data: %s\n", std::string(written.message()).c_str());
    return 1;
  }
  int64_t responses = 0;
  for (const RatedResponses& g : *groups) responses += static_cast<int64_t>(g.responses.size());
  std::printf("%s\n", absl::StrFormat("%d log records from %d files -> %d entries (imitation %d, self-critic %d, "
                                      "realignment %d; %d unscored and %d duplicates left out) -> %d queries with "
                                      "%d responses: %s",
                                      stats.log_records, logs.size(), stats.imitation + stats.self_critic +
                                      stats.realignment, stats.imitation, stats.self_critic, stats.realignment,
                                      stats.unscored, stats.duplicates, groups->size(), responses,
                                      absl::GetFlag(FLAGS_out)).c_str());
  return 0;
}

}  // namespace agora::cli
