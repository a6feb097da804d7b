// agora memory --config RECIPE.yaml [--world_size N] [--model_config config.json] [--gpu_memory_gib G] [key=value ...]:
// the per-rank memory the recipe's training step needs at every sharding level (trainer/memory_model.h), side by
// side, and whether each fits a GPU. The model's dimensions come from model.path's config.json, or from
// --model_config (assets/configs/ has Llama-2/3's), so no weights are needed. Exit codes: 0, 1 on an error, 2 on
// bad usage.
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "models/config.h"
#include "trainer/memory_model.h"
#include "trainer/memory_model_recipe.h"
#include "trainer/recipe.h"

ABSL_DECLARE_FLAG(std::string, config);  // cli/train_command.cpp
ABSL_FLAG(int64_t, world_size, 1, "data-parallel ranks (GPUs) the step is spread over");
ABSL_FLAG(std::string, model_config, "",
          "a config.json giving the model's dimensions (default: model.path's); assets/configs/ has Llama-2/3's");
ABSL_FLAG(double, gpu_memory_gib, 80.0, "each GPU's memory in GiB, for the `fits` row (0: no such row)");
ABSL_FLAG(double, reserve_gib, 2.0,
          "GiB a rank needs beyond the model's estimate (CUDA context, allocator fragmentation) for `fits`");
ABSL_FLAG(bool, json, false, "print the breakdowns as JSON (bytes per rank, by level) instead of the table");

namespace agora::cli {
namespace {

constexpr ShardingLevel kLevels[] = {ShardingLevel::kNone, ShardingLevel::kOptimizer, ShardingLevel::kGradients,
                                     ShardingLevel::kParameters};

// 6.74B, 19.99M, 0.19M.
std::string Billions(int64_t n) {
  const double x = static_cast<double>(n);
  return x >= 1e9 ? absl::StrFormat("%.2fB", x / 1e9) : absl::StrFormat("%.2fM", x / 1e6);
}

}  // namespace

int RunMemory(const std::vector<char*>& positional_args) {
  const std::string config = absl::GetFlag(FLAGS_config);
  if (config.empty()) {
    std::fprintf(stderr, "agora memory: --config RECIPE.yaml is required\n");
    return 2;
  }
  const int64_t world_size = absl::GetFlag(FLAGS_world_size);
  if (world_size < 1) {
    std::fprintf(stderr, "agora memory: --world_size must be >= 1, got %lld\n", static_cast<long long>(world_size));
    return 2;
  }
  std::vector<std::string> overrides(positional_args.begin() + 1, positional_args.end());
  absl::StatusOr<Recipe> recipe = LoadRecipe(config, overrides);
  if (!recipe.ok()) {
    std::fprintf(stderr, "agora memory: %s\n", std::string(recipe.status().message()).c_str());
    return 2;
  }
  std::filesystem::path config_json = absl::GetFlag(FLAGS_model_config);
  if (config_json.empty()) {
    config_json = std::filesystem::path(recipe->model.path) / "config.json";
    if (!std::filesystem::exists(config_json)) {
      std::fprintf(stderr,
                   "agora memory: %s does not exist; give the model's dimensions with --model_config config.json "
                   "(assets/configs/ has Llama-2/3's)\n",
                   config_json.string().c_str());
      return 2;
    }
  }
  absl::StatusOr<LlamaConfig> model = LoadLlamaConfig(config_json);
  if (!model.ok()) {
    std::fprintf(stderr, "agora memory: %s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  absl::StatusOr<MemoryModelInputs> inputs = MemoryInputsFromRecipe(*recipe, *model, world_size);
  if (!inputs.ok()) {
    std::fprintf(stderr, "agora memory: %s\n", std::string(inputs.status().message()).c_str());
    return 2;
  }

  std::vector<std::pair<std::string, MemoryBreakdown>> columns;
  for (ShardingLevel level : kLevels) {
    MemoryModelInputs in = *inputs;
    in.sharding = level;
    const bool chosen = level == recipe->distributed.sharding;
    columns.emplace_back(ShardingLevelName(level) + (chosen ? "*" : ""), EstimateTrainingMemory(in));
  }
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::json levels = nlohmann::json::object();
    for (size_t c = 0; c < columns.size(); ++c) {
      const MemoryBreakdown& b = columns[c].second;
      levels[ShardingLevelName(kLevels[c])] = {
          {"weights", b.weights},         {"gradients", b.gradients}, {"optimizer", b.optimizer},
          {"activations", b.activations}, {"total", b.total},         {"peak_at", b.peak_at},
          {"parameters", b.parameters},   {"trainable_parameters", b.trainable_parameters}};
    }
    const nlohmann::json out = {{"model_config", config_json.string()},
                                {"world_size", world_size},
                                {"sharding", ShardingLevelName(recipe->distributed.sharding)},
                                {"levels", levels}};
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  const MemoryBreakdown& any = columns.front().second;
  const MemoryModelInputs& in = *inputs;
  std::string text = absl::StrFormat(
      "model %s: %s parameters, hidden %d, %d layers, %d/%d heads, vocab %d\n", config_json.string(),
      Billions(any.parameters), in.model.hidden_size, in.model.num_hidden_layers, in.model.num_attention_heads,
      in.model.num_key_value_heads, in.model.vocab_size);
  std::string training =
      in.lora_rank == 0 ? std::string("full fine-tune")
                        : absl::StrCat("LoRA rank ", in.lora_rank, " on ", recipe->lora.targets,
                                       in.quantize_base == BaseQuantization::kNone
                                           ? std::string()
                                           : absl::StrCat(", ", BaseQuantizationName(in.quantize_base), " base"));
  absl::StrAppend(&text, absl::StrFormat(
      "%s (%s trained), %s weights, AdamW; micro-batch %d x %d tokens, gradient accumulation %d, activation "
      "checkpointing %s, %s loss; %s (%d rank%s)\n",
      training, Billions(any.trainable_parameters), in.param_bytes == 4 ? "float32" : "bfloat16",
      in.micro_batch_rows, in.seq_len, in.gradient_accumulation_steps, in.activation_checkpointing ? "on" : "off",
      in.head_loss == HeadLossKind::kFused ? "fused" : "torch", in.cuda ? "CUDA" : "CPU", world_size,
      world_size == 1 ? "" : "s"));
  absl::StrAppend(&text, "GiB per rank by distributed.sharding (* the recipe's)",
                  world_size == 1 ? "; one rank shards nothing, so every level is none" : "", ":\n");
  const double gpu = absl::GetFlag(FLAGS_gpu_memory_gib), reserve = absl::GetFlag(FLAGS_reserve_gib);
  absl::StrAppend(&text, FormatMemoryTable(columns, gpu, reserve));
  absl::StrAppend(&text, "total (peak) is the largest moment of the step, not the sum of the rows above (saved "
                         "activations are freed as gradients appear)");
  if (gpu > 0) absl::StrAppend(&text, absl::StrFormat("; fits: total + %g GiB reserve <= %g GiB", reserve, gpu));
  std::printf("%s\n", text.c_str());
  return 0;
}

}  // namespace agora::cli
