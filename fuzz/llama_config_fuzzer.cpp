// config.json: refused, or a config whose sizes are positive and that survives writing out and reading back.
#include "fuzz/fuzz_support.h"
#include "models/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<agora::LlamaConfig> config = agora::ParseLlamaConfig(agora::fuzz::AsText(data, size), "fuzz");
  if (!config.ok()) return 0;
  AGORA_FUZZ_CHECK(config->vocab_size > 0 && config->hidden_size > 0 && config->num_hidden_layers > 0);
  AGORA_FUZZ_CHECK(config->num_attention_heads > 0 && config->num_key_value_heads > 0 && config->head_dim > 0);
  AGORA_FUZZ_CHECK(config->num_attention_heads % config->num_key_value_heads == 0);
  absl::StatusOr<agora::LlamaConfig> again = agora::ParseLlamaConfig(agora::LlamaConfigToJson(*config), "written");
  AGORA_FUZZ_CHECK(again.ok());
  AGORA_FUZZ_CHECK(again->vocab_size == config->vocab_size && again->hidden_size == config->hidden_size &&
                   again->num_hidden_layers == config->num_hidden_layers && again->head_dim == config->head_dim);
  return 0;
}
