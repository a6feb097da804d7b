#include "models/hf_state_dict.h"

#include "models/lora.h"

namespace agora {

bool IsIgnorableHfTensor(std::string_view name, const LlamaConfig& c) {
  if (name.ends_with(".rotary_emb.inv_freq")) return true;
  return c.tie_word_embeddings && name == "lm_head.weight";
}

std::vector<std::pair<std::string, at::Tensor>> HfStateDict(const LlamaForCausalLM& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  // Module names are HF names (see llama.h): the mapping is the identity. LoRA adapters are not part of the
  // base model's state dict; they are saved as PEFT adapters (models/lora.h).
  for (const auto& item : model->named_parameters(/*recurse=*/true))
    if (!IsLoraParameterName(item.key())) out.emplace_back(item.key(), item.value());
  return out;
}

std::vector<std::pair<std::string, LinearImpl*>> QuantizedProjections(const LlamaForCausalLM& model) {
  std::vector<std::pair<std::string, LinearImpl*>> out;
  for (const auto& item : model->named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    auto* linear = item.value()->as<LinearImpl>();
    if (linear != nullptr && linear->quantization != BaseQuantization::kNone)
      out.emplace_back(item.key() + ".weight", linear);
  }
  return out;
}

}  // namespace agora
