// The training state of a sharded run in a checkpoint folder, beside the usual files (training_checkpoint.h):
//   rank_00000.safetensors ...   each rank's shards: "<group>.param" (the parameters, their dtype) and AdamW's
//                                "<group>.exp_avg", "<group>.exp_avg_sq" (+ "<group>.master"), each a flat
//                                slice of shard_numel values
//   sharding.json                the world size and level, and every group: its length, shard length, dtype
//                                and members (HF tensor name, shape, offset in the flat) — what a reader needs
//                                to cut the flats back into whole tensors, at any world size
// Every rank writes its file into the checkpoint's .tmp folder; rank 0 then writes sharding.json and
// trainer_state.json (with the size and CRC-32C of every file, the rank files included) and renames the folder:
// the same single commit as an unsharded checkpoint. The folder must be on storage every rank sees.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "trainer/adamw.h"
#include "trainer/distributed/sharded_parameters.h"

namespace agora {

inline constexpr char kShardingFile[] = "sharding.json";
std::string RankFileName(int64_t rank);  // rank_00000.safetensors

// sharding.json of a run's layout (trainable groups only: frozen ones come from model.path).
std::string ShardingMetadataJson(const ShardedParameters& sharded);

// What this rank writes into its rank file.
std::map<std::string, at::Tensor> RankShardTensors(const ShardedParameters& sharded, const AdamW& optimizer);

// A checkpoint's training state as whole tensors by parameter name, sharded (rank files, any world size) or not
// (optimizer.safetensors; the weights are then the folder's model files, not read here).
class SavedTrainingState {
 public:
  static absl::StatusOr<std::unique_ptr<SavedTrainingState>> Open(const std::filesystem::path& dir);
  virtual ~SavedTrainingState() = default;
  virtual bool sharded() const = 0;
  // Parameter `name`'s `kind` ("param", "exp_avg", "exp_avg_sq", "master") as saved, whole, on the CPU;
  // NotFound when the checkpoint has none ("param" of an unsharded checkpoint: its model files hold it).
  virtual absl::StatusOr<at::Tensor> Get(const std::string& name, const std::string& kind) = 0;
};

// Restores `optimizer` (and the trainable weights the checkpoint holds in its shards) into a run laid out as
// `sharded` (null: unsharded) from whatever layout and world size `saved` was written with. Collective for a
// sharded run: every rank calls it.
absl::Status RestoreOptimizer(SavedTrainingState& saved, AdamW& optimizer, ShardedParameters* sharded,
                              int64_t steps);

}  // namespace agora
