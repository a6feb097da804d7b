// Training checkpoints in the run folder:
//   checkpoints/step_0000050/   config.json, model.safetensors (HF layout, the training dtype; sharded when
//                               large), tokenizer files — a model folder `agora generate` and transformers load
//                               or, training LoRA: adapter_config.json, adapter_model.safetensors — a PEFT
//                               adapter folder (megabytes: the frozen base model is not copied)
//                               optimizer.safetensors      AdamW moments (+ fp32 master weights)
//                               trainer_state.json         step, data position, RNG states, counters
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

namespace agora {

struct TrainerState {
  int64_t step = 0;               // optimizer steps completed (skipped non-finite steps included)
  DataPosition data;              // the next micro-batch to read
  int64_t skipped_steps = 0;      // steps dropped for a non-finite loss or gradient
  int64_t trained_tokens = 0;     // trained (loss-carrying) tokens seen so far
  uint64_t seed = 0;
  int64_t world_size = 1;
  std::map<std::string, std::string> rng_states;  // see trainer/rng_state.h
};

// The newest complete checkpoint under `checkpoints_dir`, if any.
std::optional<std::filesystem::path> LatestCheckpoint(const std::filesystem::path& checkpoints_dir);

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

 private:
  std::filesystem::path dir_;
  int64_t keep_last_;
  std::filesystem::path model_dir_;
  std::optional<LoraConfig> lora_;
};


// The optimizer and trainer state of checkpoint folder `dir`. The weights are the folder's model files, loaded
// like any model folder (LoadModel) before the optimizer is built over them.
absl::StatusOr<TrainerState> RestoreTrainingState(const std::filesystem::path& dir, AdamW& optimizer);

}  // namespace agora
