#include "trainer/training_checkpoint.h"

#include <csignal>
#include <cstdlib>
#include <system_error>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "models/checkpoint.h"
#include "models/tensor_file.h"
#include "util/atomic_file.h"
#include "util/read_file.h"
#include "util/status_macros.h"

namespace agora {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kStateFile[] = "trainer_state.json";
constexpr char kOptimizerFile[] = "optimizer.safetensors";
constexpr char kFormat[] = "agora.trainer_state.v1";

std::string StepName(int64_t step) { return absl::StrFormat("step_%07d", step); }

// step_0000050 -> 50; anything else (including step_0000050.tmp) -> nullopt.
std::optional<int64_t> StepOf(const fs::path& p) {
  const std::string name = p.filename().string();
  int64_t step = 0;
  if (name.rfind("step_", 0) != 0 || !absl::SimpleAtoi(name.substr(5), &step)) return std::nullopt;
  return step;
}

json StateToJson(const TrainerState& s) {
  return json{{"format", kFormat},
              {"step", s.step},
              {"data_position", {{"epoch", s.data.epoch}, {"batch", s.data.batch}}},
              {"skipped_steps", s.skipped_steps},
              {"trained_tokens", s.trained_tokens},
              {"seed", s.seed},
              {"world_size", s.world_size},
              {"rng_states", s.rng_states}};
}

absl::StatusOr<TrainerState> StateFromJson(const fs::path& path) {
  AGORA_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  try {
    const json j = json::parse(text);
    if (j.value("format", "") != kFormat)
      return absl::InvalidArgumentError(absl::StrCat(path.string(), ": \"format\" is not ", kFormat));
    TrainerState s;
    s.step = j.at("step").get<int64_t>();
    s.data.epoch = j.at("data_position").at("epoch").get<int64_t>();
    s.data.batch = j.at("data_position").at("batch").get<int64_t>();
    s.skipped_steps = j.at("skipped_steps").get<int64_t>();
    s.trained_tokens = j.at("trained_tokens").get<int64_t>();
    s.seed = j.at("seed").get<uint64_t>();
    s.world_size = j.at("world_size").get<int64_t>();
    s.rng_states = j.at("rng_states").get<std::map<std::string, std::string>>();
    return s;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", e.what()));
  }
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
    if (step && fs::exists(entry.path() / kStateFile)) out.emplace_back(*step, entry.path());
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

CheckpointManager::CheckpointManager(fs::path checkpoints_dir, int64_t keep_last, fs::path model_dir,
                                     std::optional<LoraConfig> lora)
    : dir_(std::move(checkpoints_dir)),
      keep_last_(keep_last),
      model_dir_(std::move(model_dir)),
      lora_(std::move(lora)) {}

absl::StatusOr<fs::path> CheckpointManager::Save(const LlamaForCausalLM& model, const AdamW& optimizer,
                                                 const TrainerState& state) const {
  const fs::path final_dir = dir_ / StepName(state.step);
  if (fs::exists(final_dir / kStateFile)) return final_dir;
  const fs::path tmp = dir_ / (StepName(state.step) + ".tmp");
  AGORA_RETURN_IF_ERROR(RemoveAll(tmp));
  std::error_code ec;
  fs::create_directories(tmp, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", tmp.string(), ": ", ec.message()));

  if (lora_) {
    AGORA_RETURN_IF_ERROR(SavePeftAdapter(model, *lora_, model_dir_.string(), tmp));
  } else {
    AGORA_RETURN_IF_ERROR(SaveModel(model, tmp));
    AGORA_RETURN_IF_ERROR(CopyTokenizerFiles(model_dir_, tmp));
  }
  MaybeDieForTest(state.step);
  AGORA_RETURN_IF_ERROR(SaveTensors(tmp / kOptimizerFile, optimizer.StateTensors()));
  AGORA_RETURN_IF_ERROR(WriteStringAtomically(tmp / kStateFile, StateToJson(state).dump(2) + "\n"));

  // The commit: a complete folder appears under its final name in one rename.
  AGORA_RETURN_IF_ERROR(RemoveAll(final_dir));
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

absl::StatusOr<TrainerState> RestoreTrainingState(const fs::path& dir, AdamW& optimizer) {
  AGORA_ASSIGN_OR_RETURN(TrainerState state, StateFromJson(dir / kStateFile));
  AGORA_ASSIGN_OR_RETURN(auto tensors, LoadTensors(dir / kOptimizerFile));
  if (absl::Status loaded = optimizer.LoadState(tensors, state.step - state.skipped_steps); !loaded.ok())
    return absl::Status(loaded.code(), absl::StrCat((dir / kOptimizerFile).string(), ": ", loaded.message()));
  return state;
}

}  // namespace agora
