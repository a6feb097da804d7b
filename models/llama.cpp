#include "models/llama.h"

#include <cmath>
#include <memory>
#include <string>

#include <ATen/ATen.h>

#include "models/activation_checkpointing.h"
#include "models/quantized_weight.h"
#include "models/rope.h"

namespace agora {

LinearImpl::LinearImpl(int64_t in, int64_t out, const ModelOptions& options)
    : in_features(in), out_features(out), quantization(options.quantize_base) {
  if (quantization == BaseQuantization::kNone)
    weight = register_parameter("weight", at::empty({out_features, in_features}, options.tensor_options()));
}

at::Tensor LinearImpl::forward(const at::Tensor& x) {
  TORCH_CHECK(quantization == BaseQuantization::kNone || quantized, "a quantised projection was used before loading");
  at::Tensor y = quantized ? QuantizedLinear(x, quantized) : at::linear(x, weight);
  if (!lora_A || !lora_enabled) return y;
  // PEFT's lora.Linear: the adapter sees the input in its own dtype; the sum returns in the base output's dtype.
  at::Tensor h = x.to(lora_A->weight.scalar_type());
  if (lora_dropout > 0.0 && is_training()) h = at::dropout(h, lora_dropout, /*train=*/true);
  at::Tensor delta = lora_B->forward(lora_A->forward(h)) * lora_scaling;
  if (lora_row_mask.defined()) delta = delta * lora_row_mask;
  return (y + delta).to(y.scalar_type());
}

EmbeddingImpl::EmbeddingImpl(int64_t vocab_size, int64_t dim, const ModelOptions& options) {
  weight = register_parameter("weight", at::empty({vocab_size, dim}, options.tensor_options()));
}

at::Tensor EmbeddingImpl::forward(const at::Tensor& ids) { return at::embedding(weight, ids); }

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_, const ModelOptions& options) : eps(eps_) {
  weight = register_parameter("weight", at::empty({dim}, options.tensor_options()));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  // In at least fp32, as transformers does; float64 stays float64 (gradient checks).
  at::Tensor x32 = x.scalar_type() == at::kDouble ? x : x.to(at::kFloat);
  at::Tensor normed = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

LlamaAttentionImpl::LlamaAttentionImpl(const LlamaConfig& c, int64_t layer_index, const ModelOptions& options)
    : layer_index_(layer_index),
      num_heads_(c.num_attention_heads),
      num_kv_heads_(c.num_key_value_heads),
      head_dim_(c.head_dim) {
  q_proj = register_module("q_proj", Linear(c.hidden_size, num_heads_ * head_dim_, options));
  k_proj = register_module("k_proj", Linear(c.hidden_size, num_kv_heads_ * head_dim_, options));
  v_proj = register_module("v_proj", Linear(c.hidden_size, num_kv_heads_ * head_dim_, options));
  o_proj = register_module("o_proj", Linear(num_heads_ * head_dim_, c.hidden_size, options));
}

at::Tensor LlamaAttentionImpl::forward(const at::Tensor& x, const LayerContext& context) {
  const int64_t batch = x.size(0), seq = x.size(1);
  // [B, S, H*D] -> [B, H, S, D]
  at::Tensor q = q_proj->forward(x).view({batch, seq, num_heads_, head_dim_}).transpose(1, 2);
  at::Tensor k = k_proj->forward(x).view({batch, seq, num_kv_heads_, head_dim_}).transpose(1, 2);
  at::Tensor v = v_proj->forward(x).view({batch, seq, num_kv_heads_, head_dim_}).transpose(1, 2);
  q = ApplyRope(q, context.cos, context.sin);
  k = ApplyRope(k, context.cos, context.sin);
  if (context.cache != nullptr) std::tie(k, v) = context.cache->Append(layer_index_, k, v);
  at::Tensor out = Attention(q, k, v, context.mask, 1.0 / std::sqrt(static_cast<double>(head_dim_)),
                             context.attention_backend);
  return o_proj->forward(out.transpose(1, 2).reshape({batch, seq, num_heads_ * head_dim_}));
}

LlamaMLPImpl::LlamaMLPImpl(const LlamaConfig& c, const ModelOptions& options) {
  gate_proj = register_module("gate_proj", Linear(c.hidden_size, c.intermediate_size, options));
  up_proj = register_module("up_proj", Linear(c.hidden_size, c.intermediate_size, options));
  down_proj = register_module("down_proj", Linear(c.intermediate_size, c.hidden_size, options));
}

at::Tensor LlamaMLPImpl::forward(const at::Tensor& x) {
  return down_proj->forward(at::silu(gate_proj->forward(x)) * up_proj->forward(x));
}

LlamaDecoderLayerImpl::LlamaDecoderLayerImpl(const LlamaConfig& c, int64_t layer_index, const ModelOptions& options) {
  self_attn = register_module("self_attn", LlamaAttention(c, layer_index, options));
  mlp = register_module("mlp", LlamaMLP(c, options));
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps, options));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps, options));
}

at::Tensor LlamaDecoderLayerImpl::forward(const at::Tensor& x, const LayerContext& context) {
  at::Tensor h = x + self_attn->forward(input_layernorm->forward(x), context);
  return h + mlp->forward(post_attention_layernorm->forward(h));
}

LlamaModelImpl::LlamaModelImpl(const LlamaConfig& c, const ModelOptions& options)
    : config_(c), options_(options), inv_freq_(RopeInverseFrequencies(c)) {
  embed_tokens = register_module("embed_tokens", Embedding(c.vocab_size, c.hidden_size, options));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(LlamaDecoderLayer(c, i, options));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps, options));
}

at::Tensor LlamaModelImpl::forward(const at::Tensor& input_ids, const at::Tensor& position_ids,
                                   const AttentionMask& mask, KVCacheView* cache) {
  TORCH_CHECK(input_ids.dim() == 2 && position_ids.sizes() == input_ids.sizes(),
              "Llama: input_ids and position_ids must both be [B, S], got ", input_ids.sizes(), " and ",
              position_ids.sizes());
  at::Tensor h = embed_tokens->forward(input_ids);
  LayerContext context;
  std::tie(context.cos, context.sin) = RopeCosSin(inv_freq_, position_ids, h.scalar_type());
  context.mask = mask;
  // Packed offsets reach the GPU once here, not once per layer and pass.
  if (cache == nullptr && options_.attention == AttentionBackend::kAgora)
    PrepareForKernels(context.mask, input_ids.size(1), h.device());
  context.cache = cache;
  context.attention_backend = options_.attention;
  if (cache != nullptr) context.mask.query_offset = cache->query_offset();
  // Checkpointing only pays where a graph is being recorded; decoding with a cache never trains.
  const bool checkpoint = options_.activation_checkpointing && at::GradMode::is_enabled() && cache == nullptr;
  for (size_t i = 0; i < layers->size(); ++i) {
    std::shared_ptr<LlamaDecoderLayerImpl> layer = layers->ptr<LlamaDecoderLayerImpl>(i);
    const auto index = static_cast<int64_t>(i);
    if (layer_hooks_ != nullptr) h = layer_hooks_->Enter(index, h);
    if (checkpoint) {
      h = CheckpointedCall([layer, context](const at::Tensor& x) { return layer->forward(x, context); }, h);
    } else {
      h = layer->forward(h, context);
    }
    if (layer_hooks_ != nullptr) h = layer_hooks_->Leave(index, h);
  }
  if (cache != nullptr) cache->Advance(input_ids.size(1));
  return norm->forward(h);
}

LlamaForCausalLMImpl::LlamaForCausalLMImpl(const LlamaConfig& c, const ModelOptions& options)
    : config_(c), options_(options) {
  model = register_module("model", LlamaModel(c, options));
  ModelOptions head_options = options;  // the output projection is never quantised
  head_options.quantize_base = BaseQuantization::kNone;
  if (!c.tie_word_embeddings)
    lm_head = register_module("lm_head", Linear(c.hidden_size, c.vocab_size, head_options));
}

const at::Tensor& LlamaForCausalLMImpl::head_weight() const {
  return lm_head ? lm_head->weight : model->embed_tokens->weight;
}

at::Tensor LlamaForCausalLMImpl::Logits(const at::Tensor& hidden) const { return at::linear(hidden, head_weight()); }

at::Tensor DefaultPositions(int64_t batch, int64_t seq_len, const at::Device& device) {
  return at::arange(seq_len, at::TensorOptions().dtype(at::kLong).device(device)).unsqueeze(0).expand({batch, seq_len});
}

}  // namespace agora
