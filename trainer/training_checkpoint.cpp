#include "trainer/training_checkpoint.h"

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "models/checkpoint.h"
#include "models/tensor_file.h"
#include "trainer/distributed/sharded_checkpoint.h"
#include "util/atomic_file.h"
#include "util/crc32c.h"
#include "util/read_file.h"
#include "util/status_macros.h"

namespace agora {
namespace {

namespace fs = std::filesystem;

constexpr char kOptimizerFile[] = "optimizer.safetensors";

std::string StepName(int64_t step) { return absl::StrFormat("step_%07d", step); }

// step_0000050 -> 50; anything else (including step_0000050.tmp) -> nullopt.
std::optional<int64_t> StepOf(const fs::path& p) {
  const std::string name = p.filename().string();
  int64_t step = 0;
  if (name.rfind("step_", 0) != 0 || !absl::SimpleAtoi(name.substr(5), &step)) return std::nullopt;
  return step;
}

// The size and CRC-32C of every file of checkpoint folder `dir` but trainer_state.json, read back after writing
// (from the page cache, at the instruction's gigabytes per second).
absl::StatusOr<std::map<std::string, FileDigest>> DigestFiles(const fs::path& dir) {
  std::map<std::string, FileDigest> digests;
  std::vector<std::byte> buffer(8 << 20);
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == kTrainerStateFile || !entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    FileDigest digest;
    while (in) {
      in.read(reinterpret_cast<char*>(buffer.data()), static_cast<std::streamsize>(buffer.size()));
      const auto got = static_cast<size_t>(in.gcount());
      digest.crc32c = Crc32cExtend(digest.crc32c, absl::MakeConstSpan(buffer.data(), got));
      digest.bytes += got;
    }
    if (in.bad()) return absl::DataLossError(absl::StrCat(entry.path().string(), ": read error"));
    digests[name] = digest;
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", dir.string(), ": ", ec.message()));
  return digests;
}

absl::StatusOr<TrainerState> ReadTrainerState(const fs::path& dir) {
  const fs::path path = dir / kTrainerStateFile;
  AGORA_ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
  return ParseTrainerState(text, path.string());
}

absl::Status RemoveAll(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot remove ", p.string(), ": ", ec.message()));
  return absl::OkStatus();
}

// Test hook for the crash-safety test: AGORA_TEST_KILL_DURING_SAVE=<step> makes the process SIGKILL itself
// half-way through writing that step's checkpoint (weights written, optimizer and state not).
void MaybeDieForTest(int64_t step) {
  const char* value = std::getenv("AGORA_TEST_KILL_DURING_SAVE");
  int64_t kill_step = 0;
  if (value != nullptr && absl::SimpleAtoi(value, &kill_step) && kill_step == step) std::raise(SIGKILL);
}

// Complete checkpoints (those with a trainer_state.json, written last) by step.
std::vector<std::pair<int64_t, fs::path>> CompleteCheckpoints(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    std::optional<int64_t> step = StepOf(entry.path());
    if (step && fs::exists(entry.path() / kTrainerStateFile)) out.emplace_back(*step, entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::optional<fs::path> LatestCheckpoint(const fs::path& checkpoints_dir) {
  std::vector<std::pair<int64_t, fs::path>> all = CompleteCheckpoints(checkpoints_dir);
  if (all.empty()) return std::nullopt;
  return all.back().second;
}

absl::Status VerifyCheckpoint(const fs::path& dir) {
  AGORA_ASSIGN_OR_RETURN(const TrainerState state, ReadTrainerState(dir));
  AGORA_ASSIGN_OR_RETURN(const auto found, DigestFiles(dir));
  for (const auto& [name, saved] : state.files) {
    const auto it = found.find(name);
    const fs::path path = dir / name;
    if (it == found.end()) return absl::DataLossError(absl::StrCat(path.string(), ": missing (it was saved)"));
    if (it->second.bytes != saved.bytes)
      return absl::DataLossError(absl::StrCat(path.string(), ": ", it->second.bytes, " bytes, ", saved.bytes,
                                              " were saved"));
    if (it->second.crc32c != saved.crc32c)
      return absl::DataLossError(absl::StrFormat("%s: CRC-32C %08x, %08x was saved (the bytes changed)",
                                                 path.string(), it->second.crc32c, saved.crc32c));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<fs::path>> LatestIntactCheckpoint(const fs::path& checkpoints_dir, bool move_aside,
                                                               std::vector<std::string>& damaged) {
  std::vector<std::pair<int64_t, fs::path>> all = CompleteCheckpoints(checkpoints_dir);
  if (all.empty()) return std::nullopt;
  // Renamed only once an intact one is found: with none, nothing is touched and the run does not start over.
  std::vector<std::pair<fs::path, std::string>> bad;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    const absl::Status verified = VerifyCheckpoint(it->second);
    if (!verified.ok()) {
      bad.emplace_back(it->second, std::string(verified.message()));
      continue;
    }
    for (const auto& [dir, reason] : bad) {
      const fs::path aside = fs::path(dir).concat(".damaged");
      if (!move_aside) {
        damaged.push_back(reason);
        continue;
      }
      std::error_code ec;
      fs::remove_all(aside, ec);
      fs::rename(dir, aside, ec);
      if (ec) return absl::InternalError(absl::StrCat("cannot rename ", dir.string(), ": ", ec.message()));
      damaged.push_back(absl::StrCat(reason, "; moved to ", aside.string()));
    }
    return it->second;
  }
  std::vector<std::string> reasons;
  for (const auto& [dir, reason] : bad) reasons.push_back(reason);
  return absl::DataLossError(absl::StrCat("every checkpoint under ", checkpoints_dir.string(),
                                          " is damaged: ", absl::StrJoin(reasons, "; ")));
}

CheckpointManager::CheckpointManager(fs::path checkpoints_dir, int64_t keep_last, fs::path model_dir,
                                     std::optional<LoraConfig> lora)
    : dir_(std::move(checkpoints_dir)),
      keep_last_(keep_last),
      model_dir_(std::move(model_dir)),
      lora_(std::move(lora)) {}

bool CheckpointManager::Complete(int64_t step) const {
  return fs::exists(dir_ / StepName(step) / kTrainerStateFile);
}

fs::path CheckpointManager::TempFolder(int64_t step) const { return dir_ / (StepName(step) + ".tmp"); }

absl::Status CheckpointManager::PrepareTemp(int64_t step) const {
  const fs::path tmp = TempFolder(step);
  AGORA_RETURN_IF_ERROR(RemoveAll(tmp));
  std::error_code ec;
  fs::create_directories(tmp, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", tmp.string(), ": ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<fs::path> CheckpointManager::Save(const LlamaForCausalLM& model, const AdamW& optimizer,
                                                 const TrainerState& state) const {
  if (Complete(state.step)) return dir_ / StepName(state.step);
  AGORA_RETURN_IF_ERROR(PrepareTemp(state.step));
  return Commit(model, &optimizer, state, /*write_weights=*/true, /*sharding_json=*/"");
}

absl::StatusOr<fs::path> CheckpointManager::CommitSharded(const LlamaForCausalLM& model, const TrainerState& state,
                                                          const std::string& sharding_json,
                                                          bool weights_sharded) const {
  return Commit(model, nullptr, state, !weights_sharded, sharding_json);
}

absl::StatusOr<fs::path> CheckpointManager::Commit(const LlamaForCausalLM& model, const AdamW* optimizer,
                                                   const TrainerState& state, bool write_weights,
                                                   const std::string& sharding_json) const {
  const fs::path final_dir = dir_ / StepName(state.step);
  const fs::path tmp = TempFolder(state.step);
  if (lora_) {
    AGORA_RETURN_IF_ERROR(SavePeftAdapter(model, *lora_, model_dir_.string(), tmp));
  } else {
    if (write_weights) AGORA_RETURN_IF_ERROR(SaveModel(model, tmp));
    AGORA_RETURN_IF_ERROR(CopyTokenizerFiles(model_dir_, tmp));
  }
  MaybeDieForTest(state.step);
  if (optimizer != nullptr) AGORA_RETURN_IF_ERROR(SaveTensors(tmp / kOptimizerFile, optimizer->StateTensors()));
  if (!sharding_json.empty()) AGORA_RETURN_IF_ERROR(WriteStringAtomically(tmp / kShardingFile, sharding_json));
  TrainerState with_digests = state;
  AGORA_ASSIGN_OR_RETURN(with_digests.files, DigestFiles(tmp));
  AGORA_RETURN_IF_ERROR(WriteStringAtomically(tmp / kTrainerStateFile, TrainerStateToJson(with_digests)));

  // The commit: a complete folder appears under its final name in one rename.
  AGORA_RETURN_IF_ERROR(RemoveAll(final_dir));
  std::error_code ec;
  fs::rename(tmp, final_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp.string(), ": ", ec.message()));
  AGORA_RETURN_IF_ERROR(SyncDirectory(dir_));

  // Housekeeping after the commit: stale temporaries of interrupted saves, and old checkpoints.
  for (const fs::directory_entry& entry : fs::directory_iterator(dir_, ec))
    if (entry.path().extension() == ".tmp") AGORA_RETURN_IF_ERROR(RemoveAll(entry.path()));
  std::vector<std::pair<int64_t, fs::path>> all = CompleteCheckpoints(dir_);
  for (size_t i = 0; i + keep_last_ < all.size(); ++i) AGORA_RETURN_IF_ERROR(RemoveAll(all[i].second));
  return final_dir;
}

bool HasModelWeights(const fs::path& dir) {
  return fs::exists(dir / "model.safetensors") || fs::exists(dir / "model.safetensors.index.json");
}

absl::StatusOr<TrainerState> RestoreTrainingState(const fs::path& dir, AdamW& optimizer, ShardedParameters* sharded) {
  AGORA_ASSIGN_OR_RETURN(TrainerState state, ReadTrainerState(dir));
  AGORA_ASSIGN_OR_RETURN(std::unique_ptr<SavedTrainingState> saved, SavedTrainingState::Open(dir));
  if (absl::Status loaded = RestoreOptimizer(*saved, optimizer, sharded, state.step - state.skipped_steps);
      !loaded.ok())
    return absl::Status(loaded.code(), absl::StrCat(dir.string(), ": ", loaded.message()));
  return state;
}

}  // namespace agora
