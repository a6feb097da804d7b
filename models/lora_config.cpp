#include "models/lora_config.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "util/read_file.h"
#include "util/status_macros.h"

namespace agora {

using nlohmann::json;

double LoraConfig::scaling() const {
  return use_rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

const std::vector<std::string>& LoraTargetNames() {
  static const std::vector<std::string> names = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};
  return names;
}

absl::StatusOr<std::vector<std::string>> ParseLoraTargets(const std::string& comma_separated) {
  std::vector<std::string> targets;
  for (absl::string_view piece : absl::StrSplit(comma_separated, ',', absl::SkipWhitespace())) {
    std::string name(absl::StripAsciiWhitespace(piece));
    const auto& known = LoraTargetNames();
    if (std::find(known.begin(), known.end(), name) == known.end())
      return absl::InvalidArgumentError(absl::StrCat("LoRA target '", name, "' is not one of ",
                                                     absl::StrJoin(known, ", ")));
    if (std::find(targets.begin(), targets.end(), name) != targets.end())
      return absl::InvalidArgumentError(absl::StrCat("LoRA target '", name, "' is given twice"));
    targets.push_back(name);
  }
  if (targets.empty()) return absl::InvalidArgumentError("no LoRA target given (e.g. q_proj,v_proj)");
  return targets;
}

absl::StatusOr<LoraConfig> ParsePeftAdapterConfig(std::string_view json_text, const std::string& origin) {
  const json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(origin, ": not a JSON object"));
  auto where = [&](const char* key) { return absl::StrCat(origin, ": \"", key, "\" "); };
  auto is_true = [&](const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_boolean() && it->get<bool>();
  };
  auto is_set = [&](const char* key) {  // PEFT writes null (or {}) for what is off
    const auto it = j.find(key);
    return it != j.end() && !it->is_null() && !(it->is_object() && it->empty());
  };
  const auto peft_type = j.find("peft_type");
  if (peft_type == j.end() || *peft_type != "LORA")
    return absl::InvalidArgumentError(absl::StrCat(where("peft_type"), "must be \"LORA\""));
  // Features PEFT has and Agora does not: refuse rather than compute something else.
  for (const char* flag : {"use_dora", "fan_in_fan_out", "lora_bias", "use_qalora", "use_bdlora"})
    if (is_true(flag)) return absl::UnimplementedError(absl::StrCat(where(flag), "true is not supported"));
  if (j.contains("bias") && j["bias"] != "none")
    return absl::UnimplementedError(absl::StrCat(where("bias"), "must be \"none\" (Llama has no biases)"));
  for (const char* key : {"rank_pattern", "alpha_pattern"})
    if (is_set(key)) return absl::UnimplementedError(absl::StrCat(where(key), "(per-module ranks or alphas) is not supported"));
  for (const char* key : {"layers_to_transform", "modules_to_save", "layer_replication", "target_parameters",
                          "trainable_token_indices", "exclude_modules"})
    if (is_set(key)) return absl::UnimplementedError(absl::StrCat(where(key), "is not supported"));

  // Each value read with its type checked, so a message names the key ("lora_alpha": "8" is a string).
  auto number = [&](const char* key, bool required, double fallback) -> absl::StatusOr<double> {
    const auto it = j.find(key);
    if (it == j.end() || (!required && it->is_null())) {
      if (required) return absl::InvalidArgumentError(absl::StrCat(where(key), "is missing"));
      return fallback;
    }
    if (!it->is_number()) return absl::InvalidArgumentError(absl::StrCat(where(key), "must be a number, got ", it->dump()));
    return it->get<double>();
  };
  LoraConfig config;
  AGORA_ASSIGN_OR_RETURN(const double rank, number("r", /*required=*/true, 0));
  if (rank != std::floor(rank) || rank < 1 || rank > 1e6)
    return absl::InvalidArgumentError(absl::StrCat(where("r"), "must be a whole number >= 1, got ", rank));
  config.rank = static_cast<int64_t>(rank);
  AGORA_ASSIGN_OR_RETURN(config.alpha, number("lora_alpha", /*required=*/true, 0));
  AGORA_ASSIGN_OR_RETURN(config.dropout, number("lora_dropout", /*required=*/false, 0.0));
  if (!(config.dropout >= 0.0 && config.dropout < 1.0))
    return absl::InvalidArgumentError(absl::StrCat(where("lora_dropout"), "must be in [0, 1), got ", config.dropout));
  if (const auto it = j.find("use_rslora"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) return absl::InvalidArgumentError(absl::StrCat(where("use_rslora"), "must be true or false"));
    config.use_rslora = it->get<bool>();
  }
  const auto targets = j.find("target_modules");
  std::string joined;
  if (targets != j.end() && targets->is_string()) {
    joined = targets->get<std::string>();
  } else if (targets != j.end() && targets->is_array() &&
             std::all_of(targets->begin(), targets->end(), [](const json& t) { return t.is_string(); })) {
    joined = absl::StrJoin(targets->get<std::vector<std::string>>(), ",");
  } else {
    return absl::InvalidArgumentError(absl::StrCat(where("target_modules"), "must be a string or a list of strings"));
  }
  absl::StatusOr<std::vector<std::string>> parsed = ParseLoraTargets(joined);
  if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat(where("target_modules"), parsed.status().message()));
  config.targets = *std::move(parsed);
  return config;
}

absl::StatusOr<LoraConfig> ReadPeftAdapterConfig(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / kPeftAdapterConfigFile;
  AGORA_ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
  return ParsePeftAdapterConfig(text, path.string());
}

}  // namespace agora
