// model.safetensors.index.json, the index of a sharded HF checkpoint: {"metadata": {...}, "weight_map":
// {tensor name: shard file name}}. Torch-free, so that it is fuzzed with the other parsers of outside input.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace agora {

inline constexpr char kShardIndexFile[] = "model.safetensors.index.json";

// The shard file names the index's weight_map uses, sorted, each once. A name must be a plain file name of the
// index's own folder (no '/', not "." or ".."): an index from a stranger must not reach other files. Errors name
// `origin` and the tensor.
absl::StatusOr<std::vector<std::string>> ParseShardIndex(std::string_view json_text, const std::string& origin);

}  // namespace agora
