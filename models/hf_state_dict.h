// The one explicit adapter between Agora's module tree and Hugging Face's LlamaForCausalLM state dict.
//
// Agora names its submodules exactly as transformers does, so parameter names map one to one; what this
// adapter adds is the knowledge of which tensors a checkpoint may carry that Agora does not keep, and which Agora
// parameters are not written (the tied lm_head, LoRA adapters).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/config.h"
#include "models/llama.h"

namespace agora {

// Tensors some checkpoints carry that hold nothing Agora needs: the rotary `inv_freq` buffers older
// transformers saved, and `lm_head.weight` in a tied checkpoint (it equals the embedding).
bool IsIgnorableHfTensor(std::string_view name, const LlamaConfig& config);

// HF name -> the model's parameter (the same storage, no copy). Quantised projections are not parameters and not
// listed here.
std::vector<std::pair<std::string, at::Tensor>> HfStateDict(const LlamaForCausalLM& model);

// HF weight name ("model.layers.0.self_attn.q_proj.weight") -> the projection that stores it quantised
// (ModelOptions::quantize_base), in module order.
std::vector<std::pair<std::string, LinearImpl*>> QuantizedProjections(const LlamaForCausalLM& model);

}  // namespace agora
