// LoRA (Hu et al. 2021) exactly as Hugging Face PEFT computes, initialises and stores it, so an adapter trained
// here is a PEFT adapter and a PEFT adapter trains here:
//   y = W x + scaling * B (A dropout(x)),   scaling = alpha / r   (alpha / sqrt(r) with rsLoRA)
// A [r, in] starts Kaiming-uniform (a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in)), PEFT's default), B [out, r]
// starts at zero, so training starts from the base model. The adapter runs in its own dtype (fp32) on the input
// cast to it, and the sum is cast back to the base layer's dtype, as PEFT's lora.Linear does; the base weight
// stays in its dtype (bf16 on GPU) and never gets a gradient.
//
// An adapted projection owns submodules `lora_A` and `lora_B`, so named_parameters() reads
// "model.layers.0.self_attn.q_proj.lora_A.weight": PEFT's key without its "base_model.model." prefix.
// A PEFT adapter folder is adapter_config.json + adapter_model.safetensors.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/llama.h"
#include "models/lora_config.h"

namespace agora {

// Adds fresh adapters (PEFT's initialisation, drawn from `generator`) to every targeted projection of every
// layer, in fp32 on the model's device, and freezes every base parameter (requires_grad false).
absl::Status AddLora(LlamaForCausalLM& model, const LoraConfig& config, at::Generator generator);

// The adapters' parameters, by Agora name (PEFT key without "base_model.model."), in module order.
std::vector<std::pair<std::string, at::Tensor>> LoraParameters(const LlamaForCausalLM& model);
bool IsLoraParameterName(const std::string& name);

// Writes `dir` as a PEFT adapter folder (adapter_config.json, adapter_model.safetensors with PEFT keys and
// {"format": "pt"} metadata), each file atomically. `base_model` goes into base_model_name_or_path.
absl::Status SavePeftAdapter(const LlamaForCausalLM& model, const LoraConfig& config, const std::string& base_model,
                             const std::filesystem::path& dir);

// Adds adapters as the folder's config says and fills them from its safetensors file (validated first: missing,
// unexpected or misshapen tensors are errors naming the file and tensor; a failed load leaves no adapter behind).
absl::StatusOr<LoraConfig> LoadPeftAdapter(LlamaForCausalLM& model, const std::filesystem::path& dir);

// While alive, every adapter of `model` is skipped: the model computes its base (PEFT's disable_adapter()). DPO's
// reference log-probabilities come from the policy this way, without a second copy of the weights.
class LoraAdaptersDisabled {
 public:
  explicit LoraAdaptersDisabled(LlamaForCausalLM& model);
  ~LoraAdaptersDisabled();
  LoraAdaptersDisabled(const LoraAdaptersDisabled&) = delete;
  LoraAdaptersDisabled& operator=(const LoraAdaptersDisabled&) = delete;

 private:
  std::vector<LinearImpl*> disabled_;
};

// While alive, only the rows of the next forwards' batch marked true in `use_adapter` ([B] bool) go through the
// adapters; the others compute the base model (exactly: their adapter term is multiplied by 0). For a generation
// engine decoding requests of the base model beside requests of the adapter in one step.
class LoraRowMask {
 public:
  LoraRowMask(LlamaForCausalLM& model, const at::Tensor& use_adapter);
  ~LoraRowMask();
  LoraRowMask(const LoraRowMask&) = delete;
  LoraRowMask& operator=(const LoraRowMask&) = delete;

 private:
  std::vector<LinearImpl*> masked_;
};

// Folds every adapter into its base weight (W += scaling * B A, computed in fp32, rounded once to W's dtype)
// and removes the adapters: the model is a plain Llama again, ready for SaveModel.
void MergeLora(LlamaForCausalLM& model);

}  // namespace agora
