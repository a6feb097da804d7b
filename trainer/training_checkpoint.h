// Training checkpoints in the run folder:
//   checkpoints/step_0000050/   config.json, model.safetensors (HF layout, the training dtype; sharded when
//                               large), tokenizer files — a model folder `agora generate` and transformers load
//                               or, training LoRA: adapter_config.json, adapter_model.safetensors — a PEFT
//                               adapter folder (megabytes: the frozen base model is not copied)
//                               optimizer.safetensors      AdamW moments (+ fp32 master weights)
//                               trainer_state.json         step, data position, RNG states, counters, and the
//                                                          size and CRC-32C of every other file
// A checkpoint is written into step_N.tmp/, every file fsynced, then renamed to step_N/ and the parent fsynced:
// the rename is the commit, so a crash at any point leaves either the complete new checkpoint or none (a
// stale .tmp folder, removed by the next save). Nothing in a checkpoint executes code when loaded.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/training_data.h"
#include "models/llama.h"
#include "models/lora.h"
#include "trainer/adamw.h"
#include "trainer/distributed/sharded_parameters.h"
#include "trainer/trainer_state.h"

namespace agora {

// The newest complete checkpoint under `checkpoints_dir`, if any.
std::optional<std::filesystem::path> LatestCheckpoint(const std::filesystem::path& checkpoints_dir);

// Checks every file of checkpoint `dir` against the size and CRC-32C its trainer_state.json recorded at save.
// DataLoss names the file and what differs (a truncated shard, a flipped byte, a missing file).
absl::Status VerifyCheckpoint(const std::filesystem::path& dir);

// What resume=auto resumes from: the newest complete checkpoint that verifies. Each newer one that does not is
// reported in `damaged` and, with `move_aside` (the one rank that writes), renamed to step_N.damaged: kept for
// inspection, never resumed from or left in the way of the save of step N. nullopt when there is no complete
// checkpoint; DataLoss when every one is damaged (then nothing is moved).
absl::StatusOr<std::optional<std::filesystem::path>> LatestIntactCheckpoint(const std::filesystem::path& checkpoints_dir,
                                                                            bool move_aside,
                                                                            std::vector<std::string>& damaged);

class CheckpointManager {
 public:
  // `model_dir`: the folder the run started from; its tokenizer and generation files are copied into each
  // checkpoint so that every checkpoint is a complete model folder. With `lora`, checkpoints hold the adapters
  // (as a PEFT adapter folder whose base_model_name_or_path is model_dir) instead of the model.
  CheckpointManager(std::filesystem::path checkpoints_dir, int64_t keep_last, std::filesystem::path model_dir,
                    std::optional<LoraConfig> lora = std::nullopt);

  // Writes step_<state.step>/ (skipped when it already exists: a checkpoint is immutable), then removes stale
  // .tmp folders and all but the newest keep_last checkpoints.
  absl::StatusOr<std::filesystem::path> Save(const LlamaForCausalLM& model, const AdamW& optimizer,
                                             const TrainerState& state) const;

  // A sharded save (trainer/distributed/sharded_checkpoint.h) in three moves: rank 0 prepares the step's .tmp
  // folder, every rank writes its rank file into it, rank 0 commits with the layout in `sharding_json`. The model
  // files are written unless `weights_sharded` (level parameters: a full fine-tune's weights exist only as
  // shards; `agora export --checkpoint` makes them a model folder). LoRA adapters are always written whole.
  bool Complete(int64_t step) const;
  std::filesystem::path TempFolder(int64_t step) const;
  absl::Status PrepareTemp(int64_t step) const;
  absl::StatusOr<std::filesystem::path> CommitSharded(const LlamaForCausalLM& model, const TrainerState& state,
                                                      const std::string& sharding_json, bool weights_sharded) const;

 private:
  // Writes the model (or adapter) files, then `optimizer` (null: its state is in the rank files), the digests and
  // trainer_state.json into the prepared .tmp folder, and commits it.
  absl::StatusOr<std::filesystem::path> Commit(const LlamaForCausalLM& model, const AdamW* optimizer,
                                               const TrainerState& state, bool write_weights,
                                               const std::string& sharding_json) const;

  std::filesystem::path dir_;
  int64_t keep_last_;
  std::filesystem::path model_dir_;
  std::optional<LoraConfig> lora_;
};


// The optimizer and trainer state of checkpoint folder `dir`. The weights are the folder's model files, loaded
// like any model folder (LoadModel) before the optimizer is built over them, or, in a sharded checkpoint, its
// rank files' (any world size, into a run sharded as `sharded` or not, when null). Collective when sharded.
absl::StatusOr<TrainerState> RestoreTrainingState(const std::filesystem::path& dir, AdamW& optimizer,
                                                  ShardedParameters* sharded = nullptr);

// Whether checkpoint (or model) folder `dir` holds model weights (model.safetensors or a sharded index).
bool HasModelWeights(const std::filesystem::path& dir);

}  // namespace agora
