// The terms, where each comes from, and what the CPU measurement (tests/check_memory_model.py, docs/memory_model.md)
// checked: the saved activations per layer, checkpointing's layer inputs and recomputation, torch's loss (three
// fp32 [tokens, vocab]) and the CPU path of the fused loss, AdamW's state and fp32 master weights, .grad and grad32,
// at level none on one process, agree with the measured peaks within 1.5 % in fp32 where the loss peaks, 5 % where
// a layer's backward does, and 10 % in bf16 (whose CPU kernels bring buffers of their own); the sharding levels'
// buffers (flat accumulators, buckets, the shards AdamW steps, gathered layers, gradient shards) per rank with 2 and
// 3 Gloo ranks within 1 % where the loss peaks and 3 % where a layer's backward does (fp32). Calibrated from those
// measurements: the fused loss's second tile on the CPU, and three sharded terms the design had wrong (the layers
// gathered by phase, the shards AdamW steps, the fp32 gradient shard's lifetime). Not measurable here and taken
// from the code as written: the CUDA-only terms (Agora's flash attention output read by o_proj as a view, byte
// dropout masks, the fused loss's single CUDA tile).
#include "trainer/memory_model.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace agora {
namespace {

constexpr int64_t kFp32 = 4;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

bool Targets(const MemoryModelInputs& in, const std::string& name) {
  return std::find(in.lora_targets.begin(), in.lora_targets.end(), name) != in.lora_targets.end();
}

// The groups of trainable parameters the sharded levels flatten, reduce and shard together, as PlanFlatGroups
// forms them (trainer/distributed/sharded_parameters.h): per decoder layer and at the root, the weights AdamW
// decays apart from those it does not (norms), i.e. a layer's projections, its two norms, the embedding with the
// head, the final norm; with LoRA, each layer's adapters.
struct Groups {
  std::vector<int64_t> sizes;  // element counts
  std::vector<int64_t> root_sizes;  // of `sizes`: the groups outside the decoder layers
  int64_t per_layer = 0;       // trainable elements of one decoder layer
  int64_t root = 0;            // trainable elements outside the decoder layers
  int64_t root_largest = 0;    // of the root: the largest group (the embedding with the head)
  int64_t head = 0;            // of the root: what the head's backward produces first (lm_head, or the tied embedding)
  int64_t embedding = 0;       // of the root: the embedding's own gradient, produced last (0 when tied: in `head`)
  int64_t largest_tensor = 0;  // the largest single trainable tensor (AdamW steps tensor by tensor)

  int64_t total() const {
    int64_t t = 0;
    for (int64_t s : sizes) t += s;
    return t;
  }
  int64_t largest() const { return sizes.empty() ? 0 : *std::max_element(sizes.begin(), sizes.end()); }
  int64_t sharded(int64_t world) const {  // elements per rank, each group padded to a multiple of the world size
    int64_t t = 0;
    for (int64_t s : sizes) t += CeilDiv(s, world);
    return t;
  }
  int64_t root_sharded(int64_t world) const {
    int64_t t = 0;
    for (int64_t s : root_sizes) t += CeilDiv(s, world);
    return t;
  }
};

Groups TrainableGroups(const MemoryModelInputs& in, const ParameterCounts& counts) {
  const ModelShape& m = in.model;
  Groups g;
  if (in.lora_rank == 0) {
    g.per_layer = counts.per_layer;
    g.root = counts.embedding + counts.lm_head + counts.final_norm;
    g.head = (m.tie_word_embeddings ? counts.embedding : counts.lm_head) + counts.final_norm;
    g.embedding = m.tie_word_embeddings ? 0 : counts.embedding;
    g.largest_tensor = std::max(m.vocab_size * m.hidden_size, m.intermediate_size * m.hidden_size);
    const int64_t layer_norms = 2 * m.hidden_size;
    for (int64_t l = 0; l < m.num_hidden_layers; ++l) {
      g.sizes.push_back(counts.per_layer - layer_norms);
      g.sizes.push_back(layer_norms);
    }
    g.root_largest = counts.embedding + counts.lm_head;
    g.root_sizes = {g.root_largest, counts.final_norm};
    g.sizes.insert(g.sizes.end(), g.root_sizes.begin(), g.root_sizes.end());
    return g;
  }
  for (const Projection& p : LayerProjections(m)) {
    if (!Targets(in, p.name)) continue;
    g.per_layer += in.lora_rank * (p.in_features + p.out_features);
    g.largest_tensor = std::max({g.largest_tensor, in.lora_rank * p.in_features, in.lora_rank * p.out_features});
  }
  for (int64_t l = 0; l < m.num_hidden_layers; ++l) g.sizes.push_back(g.per_layer);
  return g;
}

// The frozen or trained weights of one decoder layer as stored, adapters apart: the projections (dense in the
// model's dtype, or quantised) and the two norms.
int64_t LayerBaseBytes(const MemoryModelInputs& in) {
  const int64_t b = in.param_bytes;
  int64_t bytes = 2 * in.model.hidden_size * b;
  for (const Projection& p : LayerProjections(in.model)) {
    const bool quantised = in.lora_rank > 0 && in.quantize_base != BaseQuantization::kNone;
    bytes += quantised ? QuantizedProjectionBytes(in.quantize_base, p.out_features, p.in_features)
                       : p.out_features * p.in_features * b;
  }
  return bytes;
}

// A level-`parameters` shard of one layer's base: dense weights split by element, each group padded to a multiple
// of the world size (a full fine-tune's projections and norms are two groups, decayed and not; a LoRA base is one
// frozen group), quantised storage by byte.
int64_t LayerBaseShardBytes(const MemoryModelInputs& in, int64_t world) {
  const bool quantised = in.lora_rank > 0 && in.quantize_base != BaseQuantization::kNone;
  const int64_t bytes = LayerBaseBytes(in);
  if (quantised) return CeilDiv(bytes, world);
  const int64_t elements = bytes / in.param_bytes, norms = 2 * in.model.hidden_size;
  return (in.lora_rank > 0 ? CeilDiv(elements, world) : CeilDiv(elements - norms, world) + CeilDiv(norms, world)) *
         in.param_bytes;
}

void GiBRounded(int64_t bytes, char* buffer, size_t size) {
  std::snprintf(buffer, size, "%.2f", static_cast<double>(bytes) / kGiB);
}

}  // namespace

ModelShape ShapeOf(const LlamaConfig& c) {
  return ModelShape{c.hidden_size,        c.intermediate_size, c.num_hidden_layers, c.num_attention_heads,
                    c.num_key_value_heads, c.head_dim,          c.vocab_size,        c.tie_word_embeddings};
}

std::vector<Projection> LayerProjections(const ModelShape& m) {
  const int64_t q = m.num_attention_heads * m.head_dim, kv = m.num_key_value_heads * m.head_dim;
  return {{"q_proj", q, m.hidden_size},
          {"k_proj", kv, m.hidden_size},
          {"v_proj", kv, m.hidden_size},
          {"o_proj", m.hidden_size, q},
          {"gate_proj", m.intermediate_size, m.hidden_size},
          {"up_proj", m.intermediate_size, m.hidden_size},
          {"down_proj", m.hidden_size, m.intermediate_size}};
}

ParameterCounts CountParameters(const ModelShape& m) {
  ParameterCounts c;
  c.embedding = m.vocab_size * m.hidden_size;
  c.lm_head = m.tie_word_embeddings ? 0 : m.vocab_size * m.hidden_size;
  c.final_norm = m.hidden_size;
  c.per_layer = 2 * m.hidden_size;
  for (const Projection& p : LayerProjections(m)) c.per_layer += p.out_features * p.in_features;
  c.layers = m.num_hidden_layers * c.per_layer;
  c.total = c.embedding + c.lm_head + c.final_norm + c.layers;
  return c;
}

int64_t QuantizedProjectionBytes(BaseQuantization kind, int64_t out_features, int64_t in_features) {
  const int64_t n = out_features * in_features;
  switch (kind) {
    case BaseQuantization::kNone:
      return 0;
    case BaseQuantization::kNf4: {
      // Nf4Weight::bytes(): packed (n / 2) + absmax_codes (n / 64) + absmax2 (4 per 256 blocks) + offset (4).
      const int64_t blocks = CeilDiv(n, 64);
      return CeilDiv(n, 2) + blocks + 4 * CeilDiv(blocks, 256) + 4;
    }
    case BaseQuantization::kInt8:
      return n + 4 * out_features;  // Int8Weight::bytes(): codes + a float32 absmax per row
  }
  return 0;
}

// Per token, what autograd keeps of one decoder layer (models/llama.cpp) until that layer's backward. Autograd saves
// an op's input only when the gradient of some *other* input needs it, so what a frozen weight's matmul keeps
// differs from a trained one's. Term by term (b = the model's dtype bytes, h hidden, i intermediate, q and kv the
// query and key/value widths, H query heads):
//   RMSNorm x2       x in fp32 (the input itself when fp32, a copy otherwise; pow and mul keep it): 4h, and
//                    rsqrt's result: 4; the normalised x (for the norm weight's gradient): b h when trained
//   q/k/v/gate/up/down/o inputs: a trained weight's matmul keeps its input (b x its width, shared by q, k, v and
//                    by gate, up); a frozen one keeps nothing, but its LoRA adapter keeps its fp32 input (the
//                    input itself when fp32, one cast copy per adapter otherwise) and lora_A's output (4 r)
//   rotary           keeps only cos and sin (shared by the layers; counted once, in the model's top)
//   attention        q, k, v after rotary b (q + 2 kv), the output b q and the log-sum-exp 4 H (Agora's flash
//                    kernels and the CPU's SDPA flash both save these; no S x S matrix); o_proj's input is a
//                    view of that output on CUDA, a copy on the CPU's per-sample path
//   SwiGLU           silu's input (gate's output) b i, the product's two factors 2 b i
int64_t LayerActivationBytesPerToken(const MemoryModelInputs& in) {
  const ModelShape& m = in.model;
  const int64_t b = in.param_bytes, h = m.hidden_size, i = m.intermediate_size;
  const int64_t q = m.num_attention_heads * m.head_dim, kv = m.num_key_value_heads * m.head_dim;
  const bool full = in.lora_rank == 0;
  const int64_t mask_bytes = in.cuda ? 1 : kFp32;  // dropout's mask: bool on CUDA, the float noise on the CPU
  // What the projections named read from an input of `width` elements keep of it.
  auto inputs = [&](int64_t width, std::initializer_list<const char*> names, bool input_already_saved) -> int64_t {
    if (full) return input_already_saved ? 0 : b * width;
    int64_t adapters = 0;
    for (const char* name : names) adapters += Targets(in, name) ? 1 : 0;
    if (adapters == 0) return 0;
    int64_t bytes = adapters * kFp32 * in.lora_rank;  // lora_A's output, which lora_B's matmul keeps
    if (in.lora_dropout) {
      bytes += adapters * (kFp32 + mask_bytes) * width;  // each adapter's own dropped-out input and its mask
    } else if (b == kFp32) {
      bytes += input_already_saved ? 0 : kFp32 * width;  // the fp32 "cast" is the input itself, shared
    } else {
      bytes += adapters * kFp32 * width;  // each adapter casts its own fp32 copy
    }
    return bytes;
  };
  const int64_t norm = kFp32 * h + kFp32 + (full ? b * h : 0);
  const bool attention_output_copied = !in.cuda && in.packed;
  int64_t bytes = 0;
  bytes += norm;                                                          // input_layernorm
  bytes += inputs(h, {"q_proj", "k_proj", "v_proj"}, false);              // its output, read by q, k, v
  bytes += b * (q + 2 * kv) + b * q + kFp32 * m.num_attention_heads;      // attention: q, k, v, out, lse
  bytes += inputs(q, {"o_proj"}, !attention_output_copied);               // o_proj's input
  bytes += norm;                                                          // post_attention_layernorm
  bytes += inputs(h, {"gate_proj", "up_proj"}, false);                    // its output, read by gate and up
  bytes += 3 * b * i;                                                     // silu's input; the product's factors
  bytes += inputs(i, {"down_proj"}, false);                               // the product, read by down
  return bytes;
}

// The step, phase by phase. Persistent all step long: the weights, AdamW's state and the gradient buffers a level
// keeps (fp32 accumulators, buckets, shards). On top, per phase:
//   loss forward and backward  every layer's saved activations (or, checkpointed, every layer's input), the
//                    model's top (final norm, head input, rotary tables) and the loss's working set
//   layer l backward the saved activations of layers 0..l (checkpointed: their inputs plus layer l recomputed),
//                    a layer backward's transient gradients, and the .grad of everything after layer l
//   end of backward  every .grad (the embedding's last)
//   optimizer step   .grad where the step reads it, and AdamW's temporaries (sqrt and the division: 8 bytes an
//                    element of the tensor, or shard, stepped)
// At levels `gradients` and `parameters` only the layer being differentiated has its gradients in full (then
// reduce-scattered into the fp32 shard while the layer below is differentiated), and the root's (embedding, final
// norm, head) .grad.
MemoryBreakdown EstimateTrainingMemory(const MemoryModelInputs& in) {
  const ModelShape& m = in.model;
  const int64_t b = in.param_bytes, h = m.hidden_size, L = m.num_hidden_layers, V = m.vocab_size;
  const int64_t W = std::max<int64_t>(in.world_size, 1);
  const ShardingLevel level = W == 1 ? ShardingLevel::kNone : in.sharding;
  const bool full = in.lora_rank == 0;
  const int64_t T = in.micro_batch_rows * in.seq_len;
  const ParameterCounts counts = CountParameters(m);
  const Groups groups = TrainableGroups(in, counts);
  const int64_t P = groups.total();
  const int64_t bt = full ? b : kFp32;  // the trainable parameters' (and their .grad's) dtype

  MemoryBreakdown out;
  out.parameters = counts.total + (full ? 0 : P);
  out.trainable_parameters = P;
  out.tokens_per_micro_batch = T;
  out.effective_sharding = level;

  // --- weights: the root (embedding, final norm, head) always whole, in the model's dtype; the layers' bases
  // sharded at level parameters, gathered in full one layer at a time plus the prefetched next (in the phases
  // below); adapters whole. From level optimizer on, what AdamW steps is each trainable group's shard, a copy in
  // the parameters' dtype that the updated weights are all-gathered from, except at level parameters for the
  // layers' own groups, whose shard is the only copy.
  const int64_t root_bytes = (counts.embedding + counts.lm_head + counts.final_norm) * b;
  const int64_t layer_base = LayerBaseBytes(in);
  const int64_t adapters = full ? 0 : L * groups.per_layer * kFp32;
  const int64_t shard = groups.sharded(W);
  const int64_t shard_copies = level == ShardingLevel::kNone                 ? 0
                               : level == ShardingLevel::kParameters && full ? bt * groups.root_sharded(W)
                                                                             : bt * shard;
  out.weights = (level == ShardingLevel::kParameters ? root_bytes + L * LayerBaseShardBytes(in, W)
                                                     : root_bytes + L * layer_base) +
                adapters + shard_copies;
  auto gathered = [&](int64_t layers) { return level == ShardingLevel::kParameters ? layers * layer_base : 0; };

  // --- optimizer: exp_avg and exp_avg_sq in fp32, and fp32 master weights for trainable parameters stored narrower;
  // split over the ranks from level optimizer on.
  const int64_t state_bytes_per_element = 2 * kFp32 + (bt == kFp32 ? 0 : kFp32);
  out.optimizer = state_bytes_per_element * (level == ShardingLevel::kNone ? P : shard);

  // --- gradients held all step long
  // none: an fp32 grad32 per narrower parameter (AdamW::AccumulateGradients), the all-reduce's fp32 buckets (with
  // ranks), and with fp32 parameters and several micro-batches .grad itself, summed into across them.
  // Sharded: AdamW's fp32 gradient shard, grad32 for narrower parameters (allocated with AdamW); for fp32 ones the
  // shard's own .grad, created by the first reduced gradient and freed by the step, which lives across micro-batches
  // but, with one micro-batch a step, only from the first layer's reduce-scatter on (shard_gradient below).
  const bool grad_kept_across_micro_batches =
      level == ShardingLevel::kNone && bt == kFp32 && in.gradient_accumulation_steps > 1;
  const bool shard_gradient_in_step = level != ShardingLevel::kNone && bt == kFp32 && in.gradient_accumulation_steps == 1;
  const int64_t shard_gradient_persistent = shard_gradient_in_step ? 0 : kFp32 * shard;
  int64_t grad_persistent = 0;
  switch (level) {
    case ShardingLevel::kNone:
      grad_persistent = (bt == kFp32 ? 0 : kFp32 * P) + (W > 1 ? kFp32 * P : 0) +
                        (grad_kept_across_micro_batches ? bt * P : 0);
      break;
    case ShardingLevel::kOptimizer:  // the full fp32 flat accumulator, all-reduced on the last micro-batch, + shard
      grad_persistent = kFp32 * P + shard_gradient_persistent;
      break;
    case ShardingLevel::kGradients:
    case ShardingLevel::kParameters:
      grad_persistent = shard_gradient_persistent;
      break;
  }
  // The fp32 gradient shard where it lives only within the step: from level gradients on it fills up layer by layer
  // (bounded here by the layers done), at level optimizer it appears after the backward's all-reduce.
  auto shard_gradient = [&](int64_t layers_done, bool backward_done) -> int64_t {
    if (!shard_gradient_in_step) return 0;
    if (backward_done) return kFp32 * shard;
    if (level == ShardingLevel::kOptimizer) return 0;
    return kFp32 * (shard - groups.root_sharded(W)) * layers_done / std::max<int64_t>(L, 1);
  };
  // .grad as the backward produces it: `done` elements' worth, in the trainable dtype. At levels gradients and
  // parameters a decoder layer's .grad lives only through its own backward: the layer hooks then copy it into an
  // fp32 flat whose reduce-scatter runs through the next layer's backward (sharded_parameters.h). The root's .grad
  // waits for the end of backward, where its groups are reduce-scattered one at a time.
  const bool per_layer_gradients = level == ShardingLevel::kGradients || level == ShardingLevel::kParameters;
  auto transient_grad = [&](int64_t root_done, int64_t layers_done) -> int64_t {
    if (grad_kept_across_micro_batches) return 0;  // already counted as persistent
    if (per_layer_gradients)
      return bt * root_done + (layers_done > 0 ? (bt + kFp32) * groups.per_layer : 0);
    return bt * (root_done + layers_done * groups.per_layer);
  };
  // The end of backward: every .grad left (level optimizer and none), or at the per-layer levels the root's and
  // the larger of the first layer's flat, still in flight, and a root group's.
  const int64_t end_of_backward_grad =
      grad_kept_across_micro_batches ? 0
      : per_layer_gradients          ? bt * groups.root + kFp32 * std::max(groups.per_layer, groups.root_largest)
                                     : bt * P;

  // --- activations
  const int64_t layer_saved = T * LayerActivationBytesPerToken(in);
  const int64_t layer_input = T * h * b;  // what a checkpointed layer keeps: its input
  auto saved_layers = [&](int64_t count) {  // layers 0..count-1 as the forward left them
    return in.activation_checkpointing ? count * layer_input : count * layer_saved;
  };
  // A layer's backward: the gradients flowing through it (the MLP's three intermediate-wide ones at once, the
  // residual stream's and the norms' fp32 ones) and, with a quantised base, one projection dequantised. An
  // estimate from the ops' shapes, checked where the CPU measurement peaks in a layer's backward (checkpointed,
  // small vocabulary): 1 % above the measured peak at 1024 tokens, 4-5 % above at 2048 (docs/memory_model.md); kept
  // on the safe side rather than fitted.
  int64_t layer_backward = T * (3 * b * m.intermediate_size + 4 * kFp32 * h);
  if (!full && in.quantize_base != BaseQuantization::kNone) layer_backward += b * h * m.intermediate_size;
  if (in.activation_checkpointing) layer_backward += layer_saved;  // the layer recomputed under grad mode
  // The model's top: the final norm (as a layer's norm), the head's input when the loss keeps it, the rotary cos
  // and sin (model dtype), the token ids and targets (int64).
  const bool head_trained = full;
  const bool fused = in.head_loss == HeadLossKind::kFused;
  const int64_t top = T * (kFp32 * h + kFp32 + (full ? b * h : 0) + ((head_trained || fused) ? b * h : 0) +
                           2 * m.head_dim * b + 2 * 8);
  // The loss's working set, at its forward and at its backward (torch.nn.functional's and kernels/loss's code):
  //   torch  forward: the logits in the model's dtype, their fp32 copy (the logits themselves when fp32) and
  //          log_softmax's fp32 output, which nll keeps; backward: that output, the nll's gradient and
  //          log_softmax's, three fp32 [T, V].
  //   fused  one fp32 logits tile of the widest multiple of 128 columns within 512 MiB (linear_cross_entropy.cpp's
  //          TileWidth); backward adds its gradient tile in the model's dtype (the tile itself when fp32) and
  //          grad_hidden in fp32 and in the model's dtype; grad_weight is the head's .grad. The CPU path's ATen ops
  //          add a temporary: `logits - max` in the forward's FoldTile is a second tile (calibrated: the measured
  //          CPU peak of the fused loss was a tile above the one-tile estimate, docs/memory_model.md), and
  //          MatmulInto's fp32 product of a tile's grad_weight rows.
  int64_t loss_forward = 0, loss_backward = 0;
  if (fused) {
    const int64_t fit = (int64_t{512} << 20) / std::max<int64_t>(T * kFp32, 1);
    const int64_t tile = std::clamp(fit / 128 * 128, std::min<int64_t>(128, V), V);
    loss_forward = (in.cuda ? 1 : 2) * kFp32 * T * tile;
    loss_backward = T * (kFp32 * tile + (b == kFp32 ? 0 : b * tile) + kFp32 * h + b * h + kFp32) +
                    (!in.cuda && head_trained ? kFp32 * tile * h : 0);
  } else {
    loss_forward = (b == kFp32 ? 2 * kFp32 : b + 2 * kFp32) * T * V;
    loss_backward = 3 * kFp32 * T * V;
  }

  struct Phase {
    const char* name;
    int64_t activations;
    int64_t gradients;  // beyond grad_persistent
    int64_t extra;      // optimizer temporaries
    int64_t weights;    // level parameters: the decoder layers gathered in full
  };
  std::vector<Phase> phases;
  // The head's gradient arrives inside the fused loss's backward; after torch's (whose fp32 [T, V] gradient is
  // then cast to the head's dtype for the matmul's backward). Level parameters: the last layer's forward released
  // its weights before the loss; a layer's backward has it and the layer below (prefetched) gathered.
  phases.push_back({"loss forward", saved_layers(L) + top + loss_forward, 0, 0, 0});
  phases.push_back({"loss backward", saved_layers(L) + top + loss_backward,
                    fused && head_trained ? transient_grad(groups.head, 0) : 0, 0, 0});
  if (!fused) {
    phases.push_back({"head backward", saved_layers(L) + top + T * (b * V + kFp32 * h),
                      head_trained ? transient_grad(groups.head, 0) : 0, 0, 0});
  }
  for (int64_t l = L - 1; l >= 0; --l) {
    phases.push_back({"layer backward", saved_layers(l + 1) + layer_backward,
                      // the layers whose reduce-scatter has finished: those above l + 1, still in flight
                      transient_grad(groups.head, L - 1 - l) + shard_gradient(std::max<int64_t>(0, L - 2 - l), false), 0,
                      gathered(std::min<int64_t>(2, l + 1))});
  }
  phases.push_back({"end of backward", T * h * b, end_of_backward_grad + shard_gradient(L, true), 0, 0});
  {
    // AdamW reads .grad at the step only where nothing moved it into an fp32 buffer: level none, fp32 parameters.
    const int64_t grad_at_step = level == ShardingLevel::kNone && bt == kFp32 && !grad_kept_across_micro_batches
                                     ? bt * P : 0;
    const int64_t stepped = level == ShardingLevel::kNone ? groups.largest_tensor : CeilDiv(groups.largest(), W);
    phases.push_back({"optimizer step", 0, grad_at_step + shard_gradient(L, true), 2 * kFp32 * stepped, 0});
  }

  int64_t peak = 0, gathered_peak = 0;
  for (const Phase& p : phases) {
    out.activations = std::max(out.activations, p.activations);
    out.gradients = std::max(out.gradients, p.gradients);
    gathered_peak = std::max(gathered_peak, p.weights);
    const int64_t sum = p.activations + p.gradients + p.extra + p.weights;
    if (sum > peak) {
      peak = sum;
      out.peak_at = p.name;
    }
  }
  out.total = out.weights + out.optimizer + grad_persistent + peak;
  out.weights += gathered_peak;
  out.gradients += grad_persistent;
  return out;
}

std::string FormatMemoryBreakdown(const MemoryBreakdown& breakdown) {
  return FormatMemoryTable({{"GiB", breakdown}});
}

std::string FormatMemoryTable(const std::vector<std::pair<std::string, MemoryBreakdown>>& columns,
                              double gpu_memory_gib, double reserve_gib) {
  std::vector<std::pair<std::string, std::vector<std::string>>> rows;
  auto bytes_row = [&](const std::string& name, int64_t MemoryBreakdown::*field) {
    std::vector<std::string> cells;
    for (const auto& [title, breakdown] : columns) {
      char buffer[32];
      GiBRounded(breakdown.*field, buffer, sizeof(buffer));
      cells.emplace_back(buffer);
    }
    rows.emplace_back(name, std::move(cells));
  };
  bytes_row("weights", &MemoryBreakdown::weights);
  bytes_row("gradients", &MemoryBreakdown::gradients);
  bytes_row("optimizer", &MemoryBreakdown::optimizer);
  bytes_row("activations", &MemoryBreakdown::activations);
  bytes_row("total (peak)", &MemoryBreakdown::total);
  {
    std::vector<std::string> cells;
    for (const auto& [title, breakdown] : columns) cells.push_back(breakdown.peak_at);
    rows.emplace_back("peak at", std::move(cells));
  }
  if (gpu_memory_gib > 0) {
    std::vector<std::string> cells;
    for (const auto& [title, breakdown] : columns)
      cells.emplace_back(static_cast<double>(breakdown.total) / kGiB + reserve_gib <= gpu_memory_gib ? "yes" : "no");
    char name[64];
    std::snprintf(name, sizeof(name), "fits %.4g GiB", gpu_memory_gib);
    rows.emplace_back(name, std::move(cells));
  }

  size_t first = 0;
  for (const auto& [name, cells] : rows) first = std::max(first, name.size());
  std::vector<size_t> widths;
  for (size_t c = 0; c < columns.size(); ++c) {
    size_t w = columns[c].first.size();
    for (const auto& [name, cells] : rows) w = std::max(w, cells[c].size());
    widths.push_back(w);
  }
  auto line = [&](const std::string& name, const std::vector<std::string>& cells) {
    std::string s = name + std::string(first - name.size(), ' ');
    for (size_t c = 0; c < cells.size(); ++c) s += "  " + std::string(widths[c] - cells[c].size(), ' ') + cells[c];
    return s + "\n";
  };
  std::vector<std::string> titles;
  for (const auto& column : columns) titles.push_back(column.first);
  std::string table = line("", titles);
  for (const auto& [name, cells] : rows) table += line(name, cells);
  return table;
}

}  // namespace agora
