// trainer_state.json, the last file of a training checkpoint: where the run stands (step, data position, RNG
// states, counters) and the size and CRC-32C of every other file of the checkpoint as it was saved, so that a
// truncated or damaged checkpoint is found before resuming from it. Torch-free: it is parsed from disk and fuzzed.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "data/training_data.h"

namespace agora {

inline constexpr char kTrainerStateFile[] = "trainer_state.json";

struct FileDigest {
  uint64_t bytes = 0;
  uint32_t crc32c = 0;

  bool operator==(const FileDigest&) const = default;
};

struct TrainerState {
  int64_t step = 0;               // optimizer steps completed (skipped non-finite steps included)
  DataPosition data;              // the next micro-batch to read
  int64_t skipped_steps = 0;      // steps dropped for a non-finite loss or gradient
  int64_t trained_tokens = 0;     // trained (loss-carrying) tokens seen so far
  uint64_t seed = 0;
  int64_t world_size = 1;
  // Rows of a global batch (training.batch_size x world size) when saved: with it the data position is a count
  // of rows of the epoch's order, which a run with another world size (or batch size) maps onto its own batches.
  // 0 in checkpoints written before it was recorded.
  int64_t global_batch_rows = 0;
  std::map<std::string, std::string> rng_states;  // see trainer/rng_state.h
  // The checkpoint's other files by name, as saved (empty in checkpoints written before digests were recorded).
  std::map<std::string, FileDigest> files;
};

std::string TrainerStateToJson(const TrainerState& state);
// Every field is checked for presence, type and range; errors name `origin` and the key.
absl::StatusOr<TrainerState> ParseTrainerState(std::string_view json_text, const std::string& origin);

}  // namespace agora
