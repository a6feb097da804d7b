// The memory model's inputs as a training recipe sets them (trainer/memory_model.h), apart from its torch-free core
// because the recipe brings the data library and YAML with it.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "models/config.h"
#include "trainer/memory_model.h"
#include "trainer/recipe.h"

namespace agora {

// The recipe's model dtype, LoRA, batch, checkpointing, loss and sharding level for `config`'s dimensions on
// `world_size` ranks. The device decides what "auto" means and which kernels run: device "cpu" is the CPU path
// (float32, torch's loss), anything else CUDA (bfloat16, the fused loss). An unknown LoRA target is an error.
absl::StatusOr<MemoryModelInputs> MemoryInputsFromRecipe(const Recipe& recipe, const LlamaConfig& config,
                                                         int64_t world_size);

}  // namespace agora
