// LlamaConfig: the subset of a Hugging Face `config.json` that determines what a Llama model computes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace agora {

// How rotary frequencies are derived (transformers' `rope_type`); anything else is rejected at parse time.
enum class RopeType { kDefault, kLinear, kLlama3 };

struct RopeScaling {
  RopeType type = RopeType::kDefault;
  double factor = 1.0;                     // linear, llama3
  double low_freq_factor = 1.0;            // llama3
  double high_freq_factor = 4.0;           // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

struct LlamaConfig {
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;        // defaults to num_attention_heads
  int64_t head_dim = 128;                  // defaults to hidden_size / num_attention_heads
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;      // config.json's eos_token_id may be an int or a list
  std::optional<int64_t> pad_token_id;
  std::string torch_dtype;                 // "float32" | "bfloat16" | "float16" | "" when absent

  // The config.json text this was parsed from, kept so a saved checkpoint carries every key the user had.
  std::string source_json;
};

// Parses config.json text; `origin` names the file in error messages.
absl::StatusOr<LlamaConfig> ParseLlamaConfig(std::string_view json_text, std::string_view origin);
absl::StatusOr<LlamaConfig> LoadLlamaConfig(const std::filesystem::path& config_json);

// The number of weights the config describes, in double precision: a crafted config.json can describe more
// than 2^63 (hidden_size 10^12), and a loader compares this with what the checkpoint holds before allocating.
double ParameterCount(const LlamaConfig& config);

// Serialises to config.json text in transformers' layout (the parsed source's other keys preserved).
std::string LlamaConfigToJson(const LlamaConfig& config);

}  // namespace agora
