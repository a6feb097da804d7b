#include "models/config.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "util/read_file.h"
#include "util/status_macros.h"

namespace agora {
namespace {

using nlohmann::json;

absl::Status Invalid(const std::string& origin, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat(origin, ": ", message));
}

// Reads an optional integer field; a present field of another type is an error naming the key.
absl::Status ReadInt(const json& j, const std::string& origin, const char* key, int64_t* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer()) return Invalid(origin, absl::StrCat("'", key, "' must be an integer, got ", it->dump()));
  *out = it->get<int64_t>();
  return absl::OkStatus();
}

absl::Status ReadDouble(const json& j, const std::string& origin, const char* key, double* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return Invalid(origin, absl::StrCat("'", key, "' must be a number, got ", it->dump()));
  *out = it->get<double>();
  return absl::OkStatus();
}

absl::Status ReadBool(const json& j, const std::string& origin, const char* key, bool* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return Invalid(origin, absl::StrCat("'", key, "' must be true or false, got ", it->dump()));
  *out = it->get<bool>();
  return absl::OkStatus();
}

// A key whose only supported value is `expected` (e.g. attention_bias=false): anything else is unsupported.
absl::Status RequireValue(const json& j, const std::string& origin, const char* key, const json& expected) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null() || *it == expected) return absl::OkStatus();
  return absl::UnimplementedError(absl::StrCat(origin, ": '", key, "' = ", it->dump(),
                                               " is not supported (only ", expected.dump(), ")"));
}

// rope_scaling (transformers v4) or rope_parameters (v5, which also carries rope_theta).
absl::Status ParseRope(const json& rope, const std::string& origin, const std::string& key, LlamaConfig* config) {
  if (!rope.is_object()) return Invalid(origin, absl::StrCat("'", key, "' must be an object, got ", rope.dump()));
  std::string type = "default";
  for (const char* type_key : {"rope_type", "type"}) {
    if (auto it = rope.find(type_key); it != rope.end() && it->is_string()) {
      type = it->get<std::string>();
      break;
    }
  }
  RopeScaling& s = config->rope_scaling;
  if (type == "default") {
    s.type = RopeType::kDefault;
  } else if (type == "linear") {
    s.type = RopeType::kLinear;
    if (!rope.contains("factor"))  // transformers refuses it too; 1.0 would silently not scale
      return Invalid(origin, absl::StrCat("'", key, "' of rope_type linear lacks 'factor'"));
  } else if (type == "llama3") {
    s.type = RopeType::kLlama3;
    for (const char* required : {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) {
      if (!rope.contains(required))
        return Invalid(origin, absl::StrCat("'", key, "' of rope_type llama3 lacks '", required, "'"));
    }
  } else {
    return absl::UnimplementedError(absl::StrCat(origin, ": ", key, ".rope_type '", type,
                                                 "' is not supported (supported: default, linear, llama3)"));
  }
  std::string where = absl::StrCat(origin, " ", key);
  AGORA_RETURN_IF_ERROR(ReadDouble(rope, where, "factor", &s.factor));
  AGORA_RETURN_IF_ERROR(ReadDouble(rope, where, "low_freq_factor", &s.low_freq_factor));
  AGORA_RETURN_IF_ERROR(ReadDouble(rope, where, "high_freq_factor", &s.high_freq_factor));
  AGORA_RETURN_IF_ERROR(ReadInt(rope, where, "original_max_position_embeddings", &s.original_max_position_embeddings));
  AGORA_RETURN_IF_ERROR(ReadDouble(rope, where, "rope_theta", &config->rope_theta));
  if (s.type != RopeType::kDefault && !(s.factor > 0)) return Invalid(origin, absl::StrCat(key, ".factor must be > 0"));
  if (s.type == RopeType::kLlama3 && !(s.high_freq_factor > s.low_freq_factor))
    return Invalid(origin, absl::StrCat(key, ": high_freq_factor must exceed low_freq_factor"));
  return absl::OkStatus();
}

absl::Status Validate(const LlamaConfig& c, const std::string& origin) {
  auto positive = [&](const char* name, int64_t v) -> absl::Status {
    return v > 0 ? absl::OkStatus() : Invalid(origin, absl::StrCat("'", name, "' must be > 0, got ", v));
  };
  AGORA_RETURN_IF_ERROR(positive("vocab_size", c.vocab_size));
  AGORA_RETURN_IF_ERROR(positive("hidden_size", c.hidden_size));
  AGORA_RETURN_IF_ERROR(positive("intermediate_size", c.intermediate_size));
  AGORA_RETURN_IF_ERROR(positive("num_hidden_layers", c.num_hidden_layers));
  AGORA_RETURN_IF_ERROR(positive("num_attention_heads", c.num_attention_heads));
  AGORA_RETURN_IF_ERROR(positive("num_key_value_heads", c.num_key_value_heads));
  AGORA_RETURN_IF_ERROR(positive("head_dim", c.head_dim));
  AGORA_RETURN_IF_ERROR(positive("max_position_embeddings", c.max_position_embeddings));
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    return Invalid(origin, absl::StrCat("num_attention_heads (", c.num_attention_heads,
                                        ") must be a multiple of num_key_value_heads (", c.num_key_value_heads, ")"));
  if (c.head_dim % 2 != 0) return Invalid(origin, absl::StrCat("head_dim must be even for rotary embeddings, got ", c.head_dim));
  if (!(c.rms_norm_eps > 0)) return Invalid(origin, "'rms_norm_eps' must be > 0");
  if (!(c.rope_theta > 0)) return Invalid(origin, "'rope_theta' must be > 0");
  for (int64_t id : c.eos_token_ids)
    if (id < 0 || id >= c.vocab_size) return Invalid(origin, absl::StrCat("eos_token_id ", id, " is outside the vocabulary"));
  if (c.bos_token_id && (*c.bos_token_id < 0 || *c.bos_token_id >= c.vocab_size))
    return Invalid(origin, absl::StrCat("bos_token_id ", *c.bos_token_id, " is outside the vocabulary"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LlamaConfig> ParseLlamaConfig(std::string_view json_text, std::string_view origin_view) {
  // Debian's Abseil has its own string_view type, so messages are built from std::string.
  const std::string origin(origin_view);
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Invalid(origin, "not valid JSON");
  if (!j.is_object()) return Invalid(origin, "expected a JSON object");

  if (auto it = j.find("model_type"); it != j.end() && *it != "llama")
    return absl::UnimplementedError(absl::StrCat(origin, ": model_type ", it->dump(), " is not supported (only \"llama\")"));
  // Keys that change what the model computes in ways Agora does not implement: refuse rather than ignore.
  for (const char* key : {"quantization_config", "auto_map"}) {
    if (j.contains(key)) return absl::UnimplementedError(absl::StrCat(origin, ": '", key, "' is not supported"));
  }
  AGORA_RETURN_IF_ERROR(RequireValue(j, origin, "hidden_act", "silu"));
  AGORA_RETURN_IF_ERROR(RequireValue(j, origin, "attention_bias", false));
  AGORA_RETURN_IF_ERROR(RequireValue(j, origin, "mlp_bias", false));
  AGORA_RETURN_IF_ERROR(RequireValue(j, origin, "pretraining_tp", 1));

  LlamaConfig c;
  c.source_json = std::string(json_text);
  AGORA_RETURN_IF_ERROR(ReadInt(j, origin, "vocab_size", &c.vocab_size));
  AGORA_RETURN_IF_ERROR(ReadInt(j, origin, "hidden_size", &c.hidden_size));
  AGORA_RETURN_IF_ERROR(ReadInt(j, origin, "intermediate_size", &c.intermediate_size));
  AGORA_RETURN_IF_ERROR(ReadInt(j, origin, "num_hidden_layers", &c.num_hidden_layers));
  AGORA_RETURN_IF_ERROR(ReadInt(j, origin, "num_attention_heads", &c.num_attention_heads));
  c.num_key_value_heads = c.num_attention_heads;
  AGORA_RETURN_IF_ERROR(ReadInt(j, origin, "num_key_value_heads", &c.num_key_value_heads));
  c.head_dim = c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0;
  AGORA_RETURN_IF_ERROR(ReadInt(j, origin, "head_dim", &c.head_dim));
  if (j.contains("rms_norm_eps") && j["rms_norm_eps"].is_null())  // transformers' RMSNorm cannot run with None
    return Invalid(origin, "'rms_norm_eps' is null; expected a number > 0 (e.g. 1e-5)");
  AGORA_RETURN_IF_ERROR(ReadDouble(j, origin, "rms_norm_eps", &c.rms_norm_eps));
  AGORA_RETURN_IF_ERROR(ReadDouble(j, origin, "rope_theta", &c.rope_theta));
  AGORA_RETURN_IF_ERROR(ReadInt(j, origin, "max_position_embeddings", &c.max_position_embeddings));
  AGORA_RETURN_IF_ERROR(ReadBool(j, origin, "tie_word_embeddings", &c.tie_word_embeddings));
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (auto it = j.find(key); it != j.end() && !it->is_null()) AGORA_RETURN_IF_ERROR(ParseRope(*it, origin, key, &c));
  }

  int64_t id = -1;
  AGORA_RETURN_IF_ERROR(ReadInt(j, origin, "bos_token_id", &id));
  if (id >= 0) c.bos_token_id = id;
  id = -1;
  AGORA_RETURN_IF_ERROR(ReadInt(j, origin, "pad_token_id", &id));
  if (id >= 0) c.pad_token_id = id;
  if (auto it = j.find("eos_token_id"); it != j.end() && !it->is_null()) {
    json ids = it->is_array() ? *it : json::array({*it});
    for (const json& e : ids) {
      if (!e.is_number_integer()) return Invalid(origin, absl::StrCat("'eos_token_id' must be an integer or a list of integers, got ", it->dump()));
      c.eos_token_ids.push_back(e.get<int64_t>());
    }
  }

  for (const char* key : {"dtype", "torch_dtype"}) {  // transformers v5 renamed torch_dtype to dtype
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_string()) return Invalid(origin, absl::StrCat("'", key, "' must be a string, got ", it->dump()));
    c.torch_dtype = it->get<std::string>();
    if (c.torch_dtype != "float32" && c.torch_dtype != "bfloat16" && c.torch_dtype != "float16")
      return absl::UnimplementedError(absl::StrCat(origin, ": ", key, " '", c.torch_dtype,
                                                   "' is not supported (float32, bfloat16, float16)"));
    break;
  }
  AGORA_RETURN_IF_ERROR(Validate(c, origin));
  return c;
}

absl::StatusOr<LlamaConfig> LoadLlamaConfig(const std::filesystem::path& config_json) {
  AGORA_ASSIGN_OR_RETURN(const std::string text, ReadFile(config_json));
  return ParseLlamaConfig(text, config_json.string());
}

double ParameterCount(const LlamaConfig& c) {
  const double hidden = static_cast<double>(c.hidden_size), vocab = static_cast<double>(c.vocab_size);
  const double q = static_cast<double>(c.num_attention_heads) * static_cast<double>(c.head_dim);
  const double kv = static_cast<double>(c.num_key_value_heads) * static_cast<double>(c.head_dim);
  const double layer = hidden * (2 * q + 2 * kv) + 3 * hidden * static_cast<double>(c.intermediate_size) + 2 * hidden;
  return vocab * hidden * (c.tie_word_embeddings ? 1 : 2) + static_cast<double>(c.num_hidden_layers) * layer + hidden;
}

std::string LlamaConfigToJson(const LlamaConfig& c) {
  json j = c.source_json.empty() ? json::object() : json::parse(c.source_json, nullptr, false);
  if (!j.is_object()) j = json::object();
  j["model_type"] = "llama";
  if (!j.contains("architectures")) j["architectures"] = {"LlamaForCausalLM"};
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["hidden_act"] = "silu";
  json rope = {{"rope_theta", c.rope_theta}};
  switch (c.rope_scaling.type) {
    case RopeType::kDefault: rope["rope_type"] = "default"; break;
    case RopeType::kLinear: rope["rope_type"] = "linear"; rope["factor"] = c.rope_scaling.factor; break;
    case RopeType::kLlama3:
      rope["rope_type"] = "llama3";
      rope["factor"] = c.rope_scaling.factor;
      rope["low_freq_factor"] = c.rope_scaling.low_freq_factor;
      rope["high_freq_factor"] = c.rope_scaling.high_freq_factor;
      rope["original_max_position_embeddings"] = c.rope_scaling.original_max_position_embeddings;
      break;
  }
  // Write both spellings so transformers v4 (rope_theta + rope_scaling) and v5 (rope_parameters) read it alike.
  j["rope_parameters"] = rope;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling.type == RopeType::kDefault) {
    j["rope_scaling"] = nullptr;
  } else {
    json scaling = rope;
    scaling.erase("rope_theta");
    j["rope_scaling"] = scaling;
  }
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  else if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids;
  if (c.pad_token_id) j["pad_token_id"] = *c.pad_token_id;
  if (!c.torch_dtype.empty()) {
    j.erase("torch_dtype");
    j["dtype"] = c.torch_dtype;
  }
  return j.dump(2) + "\n";
}

}  // namespace agora
