// The Llama model as transformers' LlamaForCausalLM computes it, built from small shared modules. Submodules
// carry Hugging Face's names (model.layers.N.self_attn.q_proj ...), so named_parameters() are HF tensor names.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <memory>

#include "models/attention.h"
#include "models/base_quantization.h"
#include "models/config.h"
#include "models/kv_cache.h"

namespace agora {

// How a model is built; fixed for its life. Parameters are allocated uninitialised: they are always filled from a
// checkpoint (or by an explicit init).
struct ModelOptions {
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
  AttentionBackend attention = AttentionBackend::kAgora;  // recipe key model.attention
  // Recompute each decoder layer's activations in backward instead of keeping them (training memory ~ one layer
  // of activations plus the layer inputs, for about one extra forward of compute). Recipe key
  // model.activation_checkpointing.
  bool activation_checkpointing = false;
  // The decoder layers' projections (q k v o gate up down) stored quantised and frozen, the base of a QLoRA run;
  // embeddings, norms and lm_head stay in `dtype`, as PEFT + bitsandbytes keep them. Recipe key lora.quantize_base.
  BaseQuantization quantize_base = BaseQuantization::kNone;
  at::TensorOptions tensor_options() const { return at::TensorOptions().dtype(dtype).device(device); }
};

class QuantizedWeight;  // models/quantized_weight.h

// y = x W^T, no bias (Llama has none); plus, when an adapter was added (models/lora.h), the LoRA term
// scaling * B A dropout(x) computed as PEFT does. With options.quantize_base set, W is not a parameter but a
// QuantizedWeight (models/quantized_weight.h), set when the checkpoint is loaded.
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x);
  int64_t in_features, out_features;
  at::Tensor weight;  // undefined when quantised
  BaseQuantization quantization = BaseQuantization::kNone;
  std::shared_ptr<const QuantizedWeight> quantized;  // null until loaded, and when not quantised
  // LoRA: both null without an adapter. Dropout applies in training mode (train()) only.
  std::shared_ptr<LinearImpl> lora_A, lora_B;
  double lora_scaling = 0.0;
  double lora_dropout = 0.0;
  bool lora_enabled = true;  // false: the adapter is skipped (DPO's reference model; models/lora.h)
  // [B, 1, 1] in the adapter's dtype, 1 for the rows that use the adapter and 0 for those that see the base model
  // (generation requests of both kinds decoded together; models/lora.h LoraRowMask); undefined: every row uses it.
  at::Tensor lora_row_mask;
};
TORCH_MODULE(Linear);

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t vocab_size, int64_t dim, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& ids);
  at::Tensor weight;
};
TORCH_MODULE(Embedding);

// weight * (x / rms(x)), the normalisation in fp32 and the product in the input dtype, as transformers does.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// Per-forward inputs shared by every layer: rotary tables, the mask description, the cache (may be null).
struct LayerContext {
  at::Tensor cos, sin;  // [B, S, head_dim]
  AttentionMask mask;
  KVCacheView* cache = nullptr;
  AttentionBackend attention_backend = AttentionBackend::kAgora;
};

class LlamaAttentionImpl : public torch::nn::Module {
 public:
  LlamaAttentionImpl(const LlamaConfig& config, int64_t layer_index, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x, const LayerContext& context);
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  int64_t layer_index_, num_heads_, num_kv_heads_, head_dim_;
};
TORCH_MODULE(LlamaAttention);

// down(silu(gate(x)) * up(x))
class LlamaMLPImpl : public torch::nn::Module {
 public:
  LlamaMLPImpl(const LlamaConfig& config, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x);
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(LlamaMLP);

class LlamaDecoderLayerImpl : public torch::nn::Module {
 public:
  LlamaDecoderLayerImpl(const LlamaConfig& config, int64_t layer_index, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x, const LayerContext& context);
  LlamaAttention self_attn{nullptr};
  LlamaMLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(LlamaDecoderLayer);

// What a caller may run around each decoder layer's forward: parameter sharding (trainer/distributed/
// sharded_parameters.h) gathers a layer's weights in Enter and frees them in Leave, and ties the gathering for
// the backward into the graph through the tensors it returns. Enter and Leave return the hidden state to go on
// with (the input itself, or an autograd-visible alias of it). Activation checkpointing's recomputation runs
// between them, inside the layer's backward, where the weights are gathered again.
class LayerHooks {
 public:
  virtual ~LayerHooks() = default;
  virtual at::Tensor Enter(int64_t layer, const at::Tensor& hidden) = 0;
  virtual at::Tensor Leave(int64_t layer, const at::Tensor& hidden) = 0;
};

// The transformer body: embeddings, layers, final norm ("model." in HF names).
class LlamaModelImpl : public torch::nn::Module {
 public:
  LlamaModelImpl(const LlamaConfig& config, const ModelOptions& options);
  // input_ids, position_ids: [B, S] int64. Returns the final hidden states [B, S, hidden_size].
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& position_ids, const AttentionMask& mask,
                     KVCacheView* cache);
  // Installs `hooks` (not owned; null removes them) around every decoder layer.
  void set_layer_hooks(LayerHooks* hooks) { layer_hooks_ = hooks; }
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};

 private:
  LlamaConfig config_;
  ModelOptions options_;
  at::Tensor inv_freq_;  // fp32, CPU; moved per forward (tiny)
  LayerHooks* layer_hooks_ = nullptr;
};
TORCH_MODULE(LlamaModel);

class LlamaForCausalLMImpl : public torch::nn::Module {
 public:
  LlamaForCausalLMImpl(const LlamaConfig& config, const ModelOptions& options);

  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& position_ids, const AttentionMask& mask,
                     KVCacheView* cache = nullptr) {
    return model->forward(input_ids, position_ids, mask, cache);
  }
  // The output projection: lm_head.weight, or the embedding matrix when tie_word_embeddings.
  const at::Tensor& head_weight() const;
  at::Tensor Logits(const at::Tensor& hidden) const;

  const LlamaConfig& config() const { return config_; }
  const ModelOptions& options() const { return options_; }

  LlamaModel model{nullptr};
  Linear lm_head{nullptr};  // null when tied

 private:
  LlamaConfig config_;
  ModelOptions options_;
};
TORCH_MODULE(LlamaForCausalLM);

// Positions 0..S-1 for every row: [B, S] int64 on `device`.
at::Tensor DefaultPositions(int64_t batch, int64_t seq_len, const at::Device& device);

}  // namespace agora
