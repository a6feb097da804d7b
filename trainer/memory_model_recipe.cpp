#include "trainer/memory_model_recipe.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "models/lora_config.h"

namespace agora {

absl::StatusOr<MemoryModelInputs> MemoryInputsFromRecipe(const Recipe& recipe, const LlamaConfig& config,
                                                         int64_t world_size) {
  if (world_size < 1) return absl::InvalidArgumentError(absl::StrCat("world size must be >= 1, got ", world_size));
  MemoryModelInputs in;
  in.model = ShapeOf(config);
  in.cuda = recipe.device != "cpu";
  const std::string& dtype = recipe.model.dtype;
  in.param_bytes = dtype == "float32" ? 4 : dtype == "bfloat16" ? 2 : in.cuda ? 2 : 4;  // auto: as run_training
  in.lora_rank = recipe.lora.rank;
  if (in.lora_rank > 0) {
    absl::StatusOr<std::vector<std::string>> targets = ParseLoraTargets(recipe.lora.targets);
    if (!targets.ok()) return absl::InvalidArgumentError(absl::StrCat("lora.targets: ", targets.status().message()));
    in.lora_targets = *targets;
    in.quantize_base = recipe.lora.quantize_base;
    in.lora_dropout = recipe.lora.dropout > 0.0;
  }
  in.sharding = recipe.distributed.sharding;
  in.world_size = world_size;
  in.micro_batch_rows = recipe.training.batch_size;
  in.seq_len = recipe.data.max_seq_len;
  in.gradient_accumulation_steps = recipe.training.gradient_accumulation_steps;
  in.activation_checkpointing = recipe.model.activation_checkpointing;
  in.head_loss = recipe.loss == LossChoice::kTorch || (recipe.loss == LossChoice::kAuto && !in.cuda)
                     ? HeadLossKind::kTorch
                     : HeadLossKind::kFused;
  in.packed = recipe.data.packing;
  return in;
}

}  // namespace agora
