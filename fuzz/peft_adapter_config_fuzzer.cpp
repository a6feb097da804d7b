// adapter_config.json of a downloaded PEFT adapter: refused, or a LoRA shape the trainer can build.
#include "fuzz/fuzz_support.h"
#include "models/lora_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<agora::LoraConfig> config = agora::ParsePeftAdapterConfig(agora::fuzz::AsText(data, size), "fuzz");
  if (!config.ok()) return 0;
  AGORA_FUZZ_CHECK(config->rank >= 1 && !config->targets.empty());
  AGORA_FUZZ_CHECK(config->dropout >= 0 && config->dropout < 1);
  return 0;
}
