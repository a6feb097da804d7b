// model.safetensors.index.json: refused, or shard names that stay inside the model folder.
#include "fuzz/fuzz_support.h"
#include "models/shard_index.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<std::vector<std::string>> shards = agora::ParseShardIndex(agora::fuzz::AsText(data, size), "fuzz");
  if (!shards.ok()) return 0;
  for (const std::string& name : *shards) {
    AGORA_FUZZ_CHECK(!name.empty() && name.find('/') == std::string::npos && name != "." && name != "..");
    AGORA_FUZZ_CHECK(std::filesystem::path(name).filename() == name);
  }
  return 0;
}
