// What the commands that run a model (generate, eval) share: the flags that pick the model, its adapter, device,
// dtype and chat template, and the engine options.
#pragma once

#include "absl/status/statusor.h"
#include "models/generation_engine.h"
#include "models/serving_model.h"

namespace agora::cli {

using Setup = ServingModel;

// From --model, --adapter, --chat_template, --device and --dtype.
absl::StatusOr<Setup> Load();

// --max_sequences, --prefix_cache_blocks, and the tokenizer as the engine's detokenizer.
EngineOptions MakeEngineOptions(const Setup& setup);

}  // namespace agora::cli
