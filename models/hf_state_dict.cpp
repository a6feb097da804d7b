#include "models/hf_state_dict.h"

#include "absl/strings/str_cat.h"
#include "models/lora.h"

namespace agora {

std::vector<HfTensorSpec> ExpectedHfTensors(const LlamaConfig& c) {
  const int64_t q_dim = c.num_attention_heads * c.head_dim, kv_dim = c.num_key_value_heads * c.head_dim;
  std::vector<HfTensorSpec> specs = {{"model.embed_tokens.weight", {c.vocab_size, c.hidden_size}}};
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    specs.push_back({p + "self_attn.q_proj.weight", {q_dim, c.hidden_size}});
    specs.push_back({p + "self_attn.k_proj.weight", {kv_dim, c.hidden_size}});
    specs.push_back({p + "self_attn.v_proj.weight", {kv_dim, c.hidden_size}});
    specs.push_back({p + "self_attn.o_proj.weight", {c.hidden_size, q_dim}});
    specs.push_back({p + "mlp.gate_proj.weight", {c.intermediate_size, c.hidden_size}});
    specs.push_back({p + "mlp.up_proj.weight", {c.intermediate_size, c.hidden_size}});
    specs.push_back({p + "mlp.down_proj.weight", {c.hidden_size, c.intermediate_size}});
    specs.push_back({p + "input_layernorm.weight", {c.hidden_size}});
    specs.push_back({p + "post_attention_layernorm.weight", {c.hidden_size}});
  }
  specs.push_back({"model.norm.weight", {c.hidden_size}});
  if (!c.tie_word_embeddings) specs.push_back({"lm_head.weight", {c.vocab_size, c.hidden_size}});
  return specs;
}

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

}  // namespace agora
