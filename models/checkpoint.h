// Hugging Face model folders in and out: config.json plus model.safetensors, or shards listed by
// model.safetensors.index.json. Loading maps each file and copies tensor by tensor into parameters allocated
// once in the target dtype and device, so a 7B checkpoint never exists twice in memory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/config.h"
#include "models/llama.h"
#include "models/nonfinite_weights.h"

namespace agora {

struct LoadedModel {
  LlamaConfig config;
  LlamaForCausalLM model{nullptr};
  // With NonfiniteWeights::kWarn, one line per tensor that holds NaN or infinite values (file, tensor, count).
  std::vector<std::string> nonfinite;
};

// Reads config.json and the weights of `dir`. Every problem of structure is reported before any weight is copied:
// missing and unexpected tensors, shape mismatches (both shapes), unsupported dtypes, corrupt files — each message
// names the file and the tensor. NaN or infinite values are refused (or, with kWarn, listed in `nonfinite`).
absl::StatusOr<LoadedModel> LoadModel(const std::filesystem::path& dir, const ModelOptions& options,
                                      NonfiniteWeights nonfinite = NonfiniteWeights::kRefuse);

// Fills an existing model's parameters from the safetensors files of `dir`. A problem of structure leaves the
// model as it was. Non-finite values are found as each tensor is copied, so the files are read once: a load
// refused for them has overwritten the tensors before the bad one (LoadModel, which builds its own model, never
// returns such a model). With kWarn, `nonfinite` receives one line per such tensor.
absl::Status LoadWeights(LlamaForCausalLM& model, const std::filesystem::path& dir,
                         NonfiniteWeights nonfinite = NonfiniteWeights::kRefuse,
                         std::vector<std::string>* nonfinite_found = nullptr);

struct SaveOptions {
  // transformers' default max_shard_size ("5GB", decimal). A model larger than this is split into
  // model-0000i-of-0000n.safetensors plus model.safetensors.index.json.
  int64_t max_shard_bytes = 5'000'000'000;
  // Dtype of the written tensors; the model's own when unset.
  std::optional<at::ScalarType> dtype;
};

// Writes config.json and the weights of `model` into `dir` (created if needed) in HF layout. Each file is
// written atomically (temp file, fsync, rename); a leftover single-file or sharded layout is removed after the
// new one is complete, so a reader never sees a mix.
absl::Status SaveModel(const LlamaForCausalLM& model, const std::filesystem::path& dir, const SaveOptions& options = {});

// Copies the files of a model folder that are not weights (tokenizer.model, tokenizer.json, tokenizer_config.json,
// special_tokens_map.json, generation_config.json: those present) from `from` to `to`, each atomically, so that a
// folder Agora writes is a complete model folder.
absl::Status CopyTokenizerFiles(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace agora
