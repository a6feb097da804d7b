// How much of the training state each data-parallel rank holds (recipe key distributed.sharding), ZeRO's levels
// by what they shard. Torch-free so a recipe (and the memory model) can name it.
#pragma once

#include <string>

namespace agora {

enum class ShardingLevel {
  kNone,        // every rank holds everything; gradients all-reduced (DDP)
  kOptimizer,   // ZeRO-1: AdamW moments and fp32 master weights split over the ranks, parameters all-gathered
  kGradients,   // ZeRO-2: + gradients reduce-scattered straight into each rank's shard
  kParameters,  // ZeRO-3 / FSDP: + each decoder layer's weights held as shards, gathered for its use only
};

inline std::string ShardingLevelName(ShardingLevel s) {
  switch (s) {
    case ShardingLevel::kNone: return "none";
    case ShardingLevel::kOptimizer: return "optimizer";
    case ShardingLevel::kGradients: return "gradients";
    case ShardingLevel::kParameters: return "parameters";
  }
  return "none";
}

}  // namespace agora
