// A LoRA adapter's configuration and its PEFT file, adapter_config.json, without torch (models/lora.h applies it).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace agora {

inline constexpr char kPeftAdapterConfigFile[] = "adapter_config.json";

struct LoraConfig {
  int64_t rank = 8;
  double alpha = 16;
  double dropout = 0.0;
  // Any of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.
  std::vector<std::string> targets = {"q_proj", "v_proj"};
  bool use_rslora = false;

  double scaling() const;
};

// The projection names LoRA may target.
const std::vector<std::string>& LoraTargetNames();
// "q_proj,v_proj" -> {"q_proj", "v_proj"}; an unknown or repeated name, or none, is an error naming it.
absl::StatusOr<std::vector<std::string>> ParseLoraTargets(const std::string& comma_separated);

// Parses adapter_config.json text; `origin` names the file. Refused with an error naming the file and key: a
// peft_type other than LORA, DoRA, biases, fan_in_fan_out, per-layer rank/alpha patterns, layers_to_transform,
// modules_to_save, targets Agora does not have, a value of the wrong type, r < 1, dropout outside [0, 1).
absl::StatusOr<LoraConfig> ParsePeftAdapterConfig(std::string_view json_text, const std::string& origin);
// The same from `dir`/adapter_config.json.
absl::StatusOr<LoraConfig> ReadPeftAdapterConfig(const std::filesystem::path& dir);

}  // namespace agora
