// How many bytes one data-parallel rank needs to train a Llama model: the weights as stored, the gradients, AdamW's
// state, the activations saved for backward, and the peak of their sum. Torch-free, so `agora memory` and the
// README's table can answer "does 70B fit 8 x 80 GB at sharding level X" without a GPU or the model's weights.
//
// What it models is this codebase's training step as written (models/llama.cpp, trainer/adamw.cpp, the sharding
// levels of trainer/distributed/sharding_level.h), term by term; memory_model.cpp says where each term comes from
// and which were calibrated against measurement (docs/memory_model.md has the figures). Not modelled: the CUDA
// context and the caching allocator's fragmentation (FormatMemoryTable's `reserve_gib` stands in for them), the
// data loader, tokenizer and libraries.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "models/base_quantization.h"
#include "models/config.h"
#include "trainer/distributed/sharding_level.h"

namespace agora {

// The dimensions of a Llama model that decide its memory (a subset of LlamaConfig).
struct ModelShape {
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;
  int64_t head_dim = 128;
  int64_t vocab_size = 32000;
  bool tie_word_embeddings = false;
};

ModelShape ShapeOf(const LlamaConfig& config);

// A decoder layer's projection as LoRA names it ("q_proj" ... "down_proj"), with its weight's [out, in].
struct Projection {
  std::string name;
  int64_t out_features = 0;
  int64_t in_features = 0;
};

// The seven projections of one decoder layer, in the order HF lists them.
std::vector<Projection> LayerProjections(const ModelShape& shape);

struct ParameterCounts {
  int64_t embedding = 0;    // vocab x hidden
  int64_t lm_head = 0;      // vocab x hidden; 0 when tied to the embedding
  int64_t final_norm = 0;   // hidden
  int64_t per_layer = 0;    // the seven projections and the two norms of one decoder layer
  int64_t layers = 0;       // num_hidden_layers x per_layer
  int64_t total = 0;
};

ParameterCounts CountParameters(const ModelShape& shape);

// Bytes of a frozen [out, in] projection as QLoRA stores it (models/quantized_weight.h): NF4 packs two codes a byte
// plus a uint8 code per block of 64 and a float32 per 256 blocks and one float32 offset (kernels/quant/nf4.h,
// about 0.516 bytes a parameter); int8 is a byte a parameter plus a float32 scale per row. kNone: 0 (the caller
// counts the dense weight in its own dtype).
int64_t QuantizedProjectionBytes(BaseQuantization kind, int64_t out_features, int64_t in_features);

// How the head's loss is computed (recipe key `loss`): kernels/loss's fused head + cross-entropy, which never holds
// [tokens, vocab] logits, or torch's (logits, then log_softmax + nll in fp32).
enum class HeadLossKind { kFused, kTorch };

struct MemoryModelInputs {
  ModelShape model;
  int64_t param_bytes = 2;  // the model's dtype: 2 (bfloat16, float16) or 4 (float32)

  // LoRA: rank 0 trains every weight. Adapters are fp32 whatever the model's dtype (models/lora.cpp).
  int64_t lora_rank = 0;
  std::vector<std::string> lora_targets;  // q_proj k_proj v_proj o_proj gate_proj up_proj down_proj
  BaseQuantization quantize_base = BaseQuantization::kNone;  // the frozen projections' storage
  bool lora_dropout = false;                                 // lora.dropout > 0 saves a mask per adapter input

  ShardingLevel sharding = ShardingLevel::kNone;
  int64_t world_size = 1;  // alone (1) nothing is sharded whatever the level: every level is `none`

  int64_t micro_batch_rows = 1;  // training.batch_size
  int64_t seq_len = 2048;        // data.max_seq_len: tokens per row
  int64_t gradient_accumulation_steps = 1;
  bool activation_checkpointing = false;
  HeadLossKind head_loss = HeadLossKind::kFused;
  // The CUDA path (Agora's flash attention, which writes its output as [B, S, H, D] so o_proj reads it without a
  // copy; dropout masks of a byte) or the CPU one (SDPA per packed sample then a cat, whose transposed reshape
  // o_proj saves as a copy; float32 dropout masks).
  bool cuda = true;
  bool packed = true;  // data.packing: samples share rows (the CPU attends sample by sample)
};

// Bytes per rank. Each component is its own peak over the step; `total` is the estimated peak of the sum, taken
// over the step's phases (the loss's forward and backward, each decoder layer's backward, the end of backward,
// the optimizer step): saved activations are freed during the backward as gradients appear, so total <= the sum.
struct MemoryBreakdown {
  int64_t weights = 0;      // parameters as stored (at level parameters: shards plus the two gathered layers),
                            // and from level optimizer on the shards AdamW steps
  int64_t gradients = 0;    // .grad, fp32 accumulators, all-reduce buckets or gradient shards, at their peak
  int64_t optimizer = 0;    // AdamW's exp_avg, exp_avg_sq and fp32 master weights
  int64_t activations = 0;  // tensors saved for backward plus the loss's working set, at their peak
  int64_t total = 0;        // the peak of the sum
  std::string peak_at;      // the phase where `total` peaks

  int64_t parameters = 0;            // every weight of the model (adapters included)
  int64_t trainable_parameters = 0;  // what AdamW steps
  int64_t tokens_per_micro_batch = 0;
  ShardingLevel effective_sharding = ShardingLevel::kNone;  // kNone when world_size is 1
};

MemoryBreakdown EstimateTrainingMemory(const MemoryModelInputs& inputs);

// Bytes the step saves for backward per token in one decoder layer without activation checkpointing (with it, a
// layer holds its input, hidden_size x param_bytes, and recomputes the rest during its own backward).
int64_t LayerActivationBytesPerToken(const MemoryModelInputs& inputs);

// One breakdown as an aligned two-column table, GiB with two decimals, for a log.
std::string FormatMemoryBreakdown(const MemoryBreakdown& breakdown);

// Several breakdowns side by side (a column each, titled by the pair's first); with gpu_memory_gib > 0 a last row
// says whether each total plus reserve_gib (the CUDA context, allocator fragmentation) fits a GPU of that size.
std::string FormatMemoryTable(const std::vector<std::pair<std::string, MemoryBreakdown>>& columns,
                              double gpu_memory_gib = 0.0, double reserve_gib = 0.0);

}  // namespace agora
