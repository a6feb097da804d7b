// trainer/memory_model.h: parameter counts and byte counts by hand, the sharding levels' ordering, the published
// Llama shapes, the recipe glue and the table.
#include "trainer/memory_model.h"

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "models/config.h"
#include "trainer/memory_model_recipe.h"
#include "trainer/recipe.h"

namespace agora {
namespace {

const std::filesystem::path kSource = AGORA_SOURCE_DIR;
constexpr ShardingLevel kLevels[] = {ShardingLevel::kNone, ShardingLevel::kOptimizer, ShardingLevel::kGradients,
                                     ShardingLevel::kParameters};

// A small GQA shape: 4 query heads of 16, 2 key/value heads, 6 layers, untied head.
ModelShape Small() {
  ModelShape m;
  m.hidden_size = 64;
  m.intermediate_size = 160;
  m.num_hidden_layers = 6;
  m.num_attention_heads = 4;
  m.num_key_value_heads = 2;
  m.head_dim = 16;
  m.vocab_size = 1000;
  m.tie_word_embeddings = false;
  return m;
}

MemoryModelInputs SmallFullFineTune() {
  MemoryModelInputs in;
  in.model = Small();
  in.param_bytes = 2;
  in.micro_batch_rows = 2;
  in.seq_len = 128;
  return in;
}

// Counted from the weights' shapes, written out here independently of the model's projection list.
int64_t HandCount(const ModelShape& m) {
  const int64_t h = m.hidden_size, i = m.intermediate_size, q = m.num_attention_heads * m.head_dim,
                kv = m.num_key_value_heads * m.head_dim;
  const int64_t attention = h * q /*q*/ + h * kv /*k*/ + h * kv /*v*/ + q * h /*o*/;
  const int64_t mlp = 3 * h * i;
  const int64_t layer = attention + mlp + 2 * h;
  return m.vocab_size * h * (m.tie_word_embeddings ? 1 : 2) + m.num_hidden_layers * layer + h;
}

TEST(MemoryModelTest, ParameterCountsMatchTheShapes) {
  const ModelShape m = Small();
  const ParameterCounts c = CountParameters(m);
  EXPECT_EQ(c.total, HandCount(m));
  EXPECT_EQ(c.embedding, 1000 * 64);
  EXPECT_EQ(c.lm_head, 1000 * 64);
  EXPECT_EQ(c.per_layer, 64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 160 + 2 * 64);
  // models/config.h's own count (double) agrees.
  LlamaConfig config;
  config.hidden_size = m.hidden_size;
  config.intermediate_size = m.intermediate_size;
  config.num_hidden_layers = m.num_hidden_layers;
  config.num_attention_heads = m.num_attention_heads;
  config.num_key_value_heads = m.num_key_value_heads;
  config.head_dim = m.head_dim;
  config.vocab_size = m.vocab_size;
  EXPECT_EQ(static_cast<double>(c.total), ParameterCount(config));
  // Tied: no head.
  ModelShape tied = m;
  tied.tie_word_embeddings = true;
  EXPECT_EQ(CountParameters(tied).total, HandCount(tied));
  EXPECT_EQ(CountParameters(tied).lm_head, 0);
}

TEST(MemoryModelTest, Llama2And3ShapesFromTheShippedConfigs) {
  struct Case {
    const char* folder;
    int64_t parameters;
  };
  // Llama-2-7B: 6,738,415,616 (the figure Meta's and HF's counts give); the others from the same formula.
  for (const Case& c : {Case{"Llama-2-7b-hf", 6738415616}, Case{"Meta-Llama-3-8B", 8030261248},
                        Case{"Llama-2-70b-hf", 68976648192}, Case{"Meta-Llama-3-70B", 70553706496}}) {
    absl::StatusOr<LlamaConfig> config = LoadLlamaConfig(kSource / "assets/configs" / c.folder / "config.json");
    ASSERT_TRUE(config.ok()) << config.status();
    const ModelShape m = ShapeOf(*config);
    EXPECT_EQ(CountParameters(m).total, c.parameters) << c.folder;
    EXPECT_EQ(CountParameters(m).total, HandCount(m)) << c.folder;
  }
  // Full fine-tuning in bf16 alone: 2 bytes a weight, 12 of AdamW (two moments and the fp32 master).
  absl::StatusOr<LlamaConfig> config = LoadLlamaConfig(kSource / "assets/configs/Llama-2-7b-hf/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  MemoryModelInputs in;
  in.model = ShapeOf(*config);
  in.param_bytes = 2;
  const MemoryBreakdown b = EstimateTrainingMemory(in);
  EXPECT_EQ(b.parameters, 6738415616);
  EXPECT_EQ(b.trainable_parameters, 6738415616);
  EXPECT_EQ(b.weights, 2 * 6738415616);
  EXPECT_EQ(b.optimizer, 12 * 6738415616);
  EXPECT_EQ(b.gradients, 6 * 6738415616);  // bf16 .grad + fp32 grad32, no buckets alone
}

TEST(MemoryModelTest, ExactBytesAloneAndOnEightRanks) {
  MemoryModelInputs in = SmallFullFineTune();
  const int64_t P = HandCount(in.model);
  const int64_t per_layer = CountParameters(in.model).per_layer, V = 1000, h = 64, L = 6;
  MemoryBreakdown alone = EstimateTrainingMemory(in);
  EXPECT_EQ(alone.weights, 2 * P);
  EXPECT_EQ(alone.optimizer, 12 * P);
  EXPECT_EQ(alone.gradients, 2 * P + 4 * P);
  EXPECT_EQ(alone.tokens_per_micro_batch, 256);

  // Eight ranks: every group (a layer's projections, its norms, the embedding with the head, the final norm) padded
  // to a multiple of 8.
  in.world_size = 8;
  auto padded = [](int64_t n) { return (n + 7) / 8; };
  const int64_t shard = L * (padded(per_layer - 2 * h) + padded(2 * h)) + padded(2 * V * h) + padded(h);
  in.sharding = ShardingLevel::kNone;
  MemoryBreakdown none = EstimateTrainingMemory(in);
  EXPECT_EQ(none.gradients, 2 * P + 4 * P + 4 * P);  // .grad, grad32, the all-reduce's buckets
  EXPECT_EQ(none.optimizer, 12 * P);
  in.sharding = ShardingLevel::kOptimizer;
  MemoryBreakdown optimizer = EstimateTrainingMemory(in);
  EXPECT_EQ(optimizer.weights, 2 * P + 2 * shard);  // + the bf16 shards AdamW steps, all-gathered from
  EXPECT_EQ(optimizer.optimizer, 12 * shard);
  EXPECT_EQ(optimizer.gradients, 2 * P + 4 * P + 4 * shard);
  in.sharding = ShardingLevel::kGradients;
  MemoryBreakdown gradients = EstimateTrainingMemory(in);
  EXPECT_EQ(gradients.optimizer, 12 * shard);
  // A layer's .grad lives through its own backward, its fp32 flat through the next layer's; this model's peak is
  // at the end of backward: the root's bf16 .grad and the fp32 flat of its largest group, the embedding with the
  // head (larger than a layer's).
  const int64_t root = 2 * V * h + h;
  ASSERT_GT(2 * V * h, per_layer);
  EXPECT_EQ(gradients.gradients, 4 * shard + 2 * root + 4 * (2 * V * h));
  EXPECT_EQ(gradients.weights, 2 * P + 2 * shard);
  in.sharding = ShardingLevel::kParameters;
  MemoryBreakdown parameters = EstimateTrainingMemory(in);
  // The root whole and its bf16 shard, the layers' shards (their only copy), two layers gathered.
  EXPECT_EQ(parameters.weights, 2 * root + 2 * (padded(2 * V * h) + padded(h)) +
                                    L * 2 * (padded(per_layer - 2 * h) + padded(2 * h)) + 2 * 2 * per_layer);
  EXPECT_EQ(parameters.optimizer, 12 * shard);
  EXPECT_EQ(parameters.gradients, gradients.gradients);
  // Activations do not depend on the level.
  for (const MemoryBreakdown& b : {none, optimizer, gradients, parameters}) EXPECT_EQ(b.activations, alone.activations);
}

TEST(MemoryModelTest, LayerActivationsByHand) {
  MemoryModelInputs in = SmallFullFineTune();
  const int64_t h = 64, i = 160, q = 64, kv = 32, H = 4;
  // bf16 on CUDA, every weight trained: each norm keeps x in fp32 (4h), rsqrt (4), the normalised x (2h); the q/k/v
  // and gate/up inputs (2h each); attention q, k, v, out (2 (q + 2kv) + 2q) and lse (4H); o_proj reads a view of
  // the output; SwiGLU 3 x 2i; down's input 2i.
  const int64_t full_bf16 = 2 * (4 * h + 4 + 2 * h) + 2 * h + 2 * (q + 2 * kv) + 2 * q + 4 * H + 2 * h + 6 * i + 2 * i;
  EXPECT_EQ(LayerActivationBytesPerToken(in), full_bf16);
  // The CPU's per-sample attention adds o_proj's copied input.
  in.cuda = false;
  EXPECT_EQ(LayerActivationBytesPerToken(in), full_bf16 + 2 * q);
  in.packed = false;
  EXPECT_EQ(LayerActivationBytesPerToken(in), full_bf16);
  // LoRA rank 8 on q and v over a bf16 base: frozen norms and projections keep nothing of their inputs; each
  // adapter casts its own fp32 input (4h) and keeps lora_A's output (4r).
  in = SmallFullFineTune();
  in.lora_rank = 8;
  in.lora_targets = {"q_proj", "v_proj"};
  const int64_t lora_bf16 = 2 * (4 * h + 4) + 2 * (4 * h + 4 * 8) + 2 * (q + 2 * kv) + 2 * q + 4 * H + 6 * i;
  EXPECT_EQ(LayerActivationBytesPerToken(in), lora_bf16);
  // In fp32 the cast is the input itself, kept once for both adapters.
  in.param_bytes = 4;
  const int64_t lora_fp32 = 2 * (4 * h + 4) + (4 * h + 2 * 4 * 8) + 4 * (q + 2 * kv) + 4 * q + 4 * H + 12 * i;
  EXPECT_EQ(LayerActivationBytesPerToken(in), lora_fp32);
}

TEST(MemoryModelTest, CheckpointingKeepsLayerInputs) {
  MemoryModelInputs in = SmallFullFineTune();
  const MemoryBreakdown plain = EstimateTrainingMemory(in);
  in.activation_checkpointing = true;
  const MemoryBreakdown checkpointed = EstimateTrainingMemory(in);
  EXPECT_LT(checkpointed.activations, plain.activations);
  EXPECT_LE(checkpointed.total, plain.total);
  EXPECT_EQ(checkpointed.weights, plain.weights);
  EXPECT_EQ(checkpointed.optimizer, plain.optimizer);
}

TEST(MemoryModelTest, QuantisedProjectionBytes) {
  // NF4: 0.5 + 1/64 + 4/16384 bytes a parameter, plus the 4-byte offset; int8: 1 + 4 / in.
  EXPECT_EQ(QuantizedProjectionBytes(BaseQuantization::kNf4, 4096, 4096), 8388608 + 262144 + 4 * 1024 + 4);
  EXPECT_NEAR(QuantizedProjectionBytes(BaseQuantization::kNf4, 4096, 4096) / (4096.0 * 4096.0), 0.51587, 1e-5);
  EXPECT_EQ(QuantizedProjectionBytes(BaseQuantization::kInt8, 11008, 4096), 11008 * 4096 + 4 * 11008);
  EXPECT_EQ(QuantizedProjectionBytes(BaseQuantization::kNone, 11008, 4096), 0);
}

TEST(MemoryModelTest, LoraWeightsAndAdapters) {
  MemoryModelInputs in = SmallFullFineTune();
  in.lora_rank = 8;
  in.lora_targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  const int64_t h = 64, i = 160, q = 64, kv = 32, L = 6, r = 8;
  const int64_t adapters_per_layer = r * ((h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h));
  const int64_t P = HandCount(in.model);
  MemoryBreakdown b = EstimateTrainingMemory(in);
  EXPECT_EQ(b.trainable_parameters, L * adapters_per_layer);
  EXPECT_EQ(b.parameters, P + L * adapters_per_layer);
  EXPECT_EQ(b.weights, 2 * P + 4 * L * adapters_per_layer);
  EXPECT_EQ(b.optimizer, 8 * L * adapters_per_layer);  // fp32 adapters: no master copy
  EXPECT_EQ(b.gradients, 4 * L * adapters_per_layer);  // fp32 .grad only, alone
  // NF4 base: the projections quantised, the norms, embedding and head in bf16.
  in.quantize_base = BaseQuantization::kNf4;
  int64_t projections = 0;
  for (const Projection& p : LayerProjections(in.model))
    projections += QuantizedProjectionBytes(BaseQuantization::kNf4, p.out_features, p.in_features);
  b = EstimateTrainingMemory(in);
  EXPECT_EQ(b.weights, 2 * (2 * 1000 * h + h) + L * (projections + 2 * 2 * h) + 4 * L * adapters_per_layer);
}

TEST(MemoryModelTest, EachLevelNeedsNoMoreThanThePrevious) {
  std::vector<MemoryModelInputs> cases;
  for (int64_t bytes : {2, 4}) {
    for (bool checkpointing : {false, true}) {
      MemoryModelInputs in = SmallFullFineTune();
      in.param_bytes = bytes;
      in.activation_checkpointing = checkpointing;
      cases.push_back(in);
      in.gradient_accumulation_steps = 4;
      cases.push_back(in);
      in.head_loss = HeadLossKind::kTorch;
      in.cuda = false;
      cases.push_back(in);
      in.lora_rank = 16;
      in.lora_targets = {"q_proj", "v_proj", "down_proj"};
      cases.push_back(in);
      in.quantize_base = BaseQuantization::kNf4;
      in.lora_dropout = !checkpointing;
      cases.push_back(in);
    }
  }
  // Llama-2-70B as the README's table has it.
  absl::StatusOr<LlamaConfig> config = LoadLlamaConfig(kSource / "assets/configs/Llama-2-70b-hf/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  MemoryModelInputs big;
  big.model = ShapeOf(*config);
  big.seq_len = 4096;
  big.activation_checkpointing = true;
  cases.push_back(big);

  for (const MemoryModelInputs& base : cases) {
    for (int64_t world : {2, 4, 8, 64}) {
      MemoryModelInputs in = base;
      in.world_size = world;
      MemoryBreakdown previous;
      for (ShardingLevel level : kLevels) {
        in.sharding = level;
        const MemoryBreakdown b = EstimateTrainingMemory(in);
        const std::string what = "W=" + std::to_string(world) + " " + ShardingLevelName(level) + " lora " +
                                 std::to_string(in.lora_rank) + " bytes " + std::to_string(in.param_bytes);
        EXPECT_LE(b.total, b.weights + b.gradients + b.optimizer + b.activations) << what;
        if (level != ShardingLevel::kNone) {
          // The shards AdamW steps are a copy beside whole weights at levels optimizer and gradients.
          if (level != ShardingLevel::kOptimizer) {
            EXPECT_LE(b.weights, previous.weights) << what;
          }
          // fp32 trainables (fp32 weights, LoRA's adapters) at level optimizer keep the fp32 flat accumulator
          // beside .grad, 4/W bytes a parameter more than none's .grad and buckets (the optimizer's shard repays
          // it many times over, as the total shows).
          const bool fp32_trainables = in.param_bytes == 4 || in.lora_rank > 0;
          if (!(fp32_trainables && level == ShardingLevel::kOptimizer)) {
            EXPECT_LE(b.gradients, previous.gradients) << what;
          }
          EXPECT_LE(b.optimizer, previous.optimizer) << what;
          EXPECT_EQ(b.activations, previous.activations) << what;
          EXPECT_LE(b.total, previous.total) << what;
        }
        previous = b;
      }
    }
  }
}

TEST(MemoryModelTest, OneRankShardsNothing) {
  MemoryModelInputs in = SmallFullFineTune();
  in.world_size = 1;
  const MemoryBreakdown none = EstimateTrainingMemory(in);
  for (ShardingLevel level : kLevels) {
    in.sharding = level;
    const MemoryBreakdown b = EstimateTrainingMemory(in);
    EXPECT_EQ(b.weights, none.weights) << ShardingLevelName(level);
    EXPECT_EQ(b.optimizer, none.optimizer) << ShardingLevelName(level);
    EXPECT_EQ(b.gradients, none.gradients) << ShardingLevelName(level);
    EXPECT_EQ(b.total, none.total) << ShardingLevelName(level);
    EXPECT_EQ(b.effective_sharding, ShardingLevel::kNone);
  }
}

TEST(MemoryModelTest, InputsFromARecipe) {
  const std::string yaml =
      "model: {path: /m, dtype: auto, activation_checkpointing: true}\n"
      "lora: {rank: 4, targets: 'q_proj,down_proj', dropout: 0.0, quantize_base: nf4}\n"
      "device: cpu\noutput_dir: /tmp/x\n"
      "data: {train: {path: /d.jsonl}, max_seq_len: 512, packing: false}\n"
      "training: {batch_size: 3, gradient_accumulation_steps: 2}\n"
      "distributed: {sharding: gradients}\n";
  absl::StatusOr<Recipe> recipe = ParseRecipe(yaml, "test", {});
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  LlamaConfig config;
  config.vocab_size = 1000;
  absl::StatusOr<MemoryModelInputs> in = MemoryInputsFromRecipe(*recipe, config, 4);
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_EQ(in->param_bytes, 4);  // auto on the CPU
  EXPECT_FALSE(in->cuda);
  EXPECT_EQ(in->head_loss, HeadLossKind::kTorch);
  EXPECT_EQ(in->lora_rank, 4);
  EXPECT_EQ(in->lora_targets, (std::vector<std::string>{"q_proj", "down_proj"}));
  EXPECT_EQ(in->quantize_base, BaseQuantization::kNf4);
  EXPECT_EQ(in->micro_batch_rows, 3);
  EXPECT_EQ(in->seq_len, 512);
  EXPECT_EQ(in->gradient_accumulation_steps, 2);
  EXPECT_TRUE(in->activation_checkpointing);
  EXPECT_FALSE(in->packed);
  EXPECT_EQ(in->sharding, ShardingLevel::kGradients);
  EXPECT_EQ(in->world_size, 4);
  EXPECT_EQ(in->model.vocab_size, 1000);

  recipe = ParseRecipe(yaml, "test", {"device=auto", "lora.rank=0"});
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  in = MemoryInputsFromRecipe(*recipe, config, 1);
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_EQ(in->param_bytes, 2);  // auto on CUDA
  EXPECT_EQ(in->head_loss, HeadLossKind::kFused);
  EXPECT_EQ(in->lora_rank, 0);
  EXPECT_TRUE(in->lora_targets.empty());
  EXPECT_FALSE(MemoryInputsFromRecipe(*recipe, config, 0).ok());
}

TEST(MemoryModelTest, TableIsAligned) {
  std::vector<std::pair<std::string, MemoryBreakdown>> columns;
  MemoryModelInputs in = SmallFullFineTune();
  in.world_size = 8;
  for (ShardingLevel level : kLevels) {
    in.sharding = level;
    columns.emplace_back(ShardingLevelName(level), EstimateTrainingMemory(in));
  }
  const std::string table = FormatMemoryTable(columns, 80.0, 2.0);
  std::istringstream lines(table);
  std::vector<std::string> rows;
  for (std::string line; std::getline(lines, line);) rows.push_back(line);
  ASSERT_EQ(rows.size(), 8u) << table;  // titles, five byte rows, peak at, fits
  for (const std::string& row : rows) EXPECT_EQ(row.size(), rows[0].size()) << table;
  EXPECT_NE(table.find("total (peak)"), std::string::npos);
  EXPECT_NE(table.find("fits 80 GiB"), std::string::npos);
  EXPECT_NE(table.find("parameters"), std::string::npos);
  const std::string one = FormatMemoryBreakdown(columns[0].second);
  EXPECT_NE(one.find("weights"), std::string::npos) << one;
  std::printf("%s\n", table.c_str());
}

}  // namespace
}  // namespace agora
