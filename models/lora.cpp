#include "models/lora.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "models/tensor_file.h"
#include "util/atomic_file.h"
#include "util/status_macros.h"

namespace agora {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kWeightsFile[] = "adapter_model.safetensors";
constexpr char kPeftPrefix[] = "base_model.model.";

// Every projection LoRA may adapt, with its HF module path.
std::vector<std::pair<std::string, LinearImpl*>> Projections(const LlamaForCausalLM& model) {
  std::vector<std::pair<std::string, LinearImpl*>> out;
  const auto& layers = *model->model->layers;
  for (size_t i = 0; i < layers.size(); ++i) {
    auto* layer = layers[i]->as<LlamaDecoderLayer>();
    const std::string p = absl::StrCat("model.layers.", i, ".");
    auto& attn = *layer->self_attn;
    auto& mlp = *layer->mlp;
    for (auto [name, linear] : std::initializer_list<std::pair<const char*, Linear>>{
             {"self_attn.q_proj", attn.q_proj}, {"self_attn.k_proj", attn.k_proj},
             {"self_attn.v_proj", attn.v_proj}, {"self_attn.o_proj", attn.o_proj},
             {"mlp.gate_proj", mlp.gate_proj},  {"mlp.up_proj", mlp.up_proj},
             {"mlp.down_proj", mlp.down_proj}})
      out.emplace_back(p + name, linear.get());
  }
  return out;
}

// "model.layers.3.mlp.up_proj" -> "up_proj"
std::string ShortName(const std::string& path) { return path.substr(path.rfind('.') + 1); }

void RemoveAdapter(LinearImpl& linear) {
  if (!linear.lora_A) return;
  linear.unregister_module("lora_A");
  linear.unregister_module("lora_B");
  linear.lora_A.reset();
  linear.lora_B.reset();
}

}  // namespace

absl::Status AddLora(LlamaForCausalLM& model, const LoraConfig& config, at::Generator generator) {
  if (config.rank < 1) return absl::InvalidArgumentError(absl::StrCat("LoRA rank must be >= 1, got ", config.rank));
  if (!(config.dropout >= 0.0 && config.dropout < 1.0))
    return absl::InvalidArgumentError(absl::StrCat("LoRA dropout must be in [0, 1), got ", config.dropout));
  if (!LoraParameters(model).empty()) return absl::FailedPreconditionError("the model already has LoRA adapters");
  at::NoGradGuard no_grad;
  for (auto& param : model->parameters()) param.set_requires_grad(false);
  const ModelOptions adapter_options{at::kFloat, model->options().device};
  for (auto& [path, linear] : Projections(model)) {
    const std::vector<std::string>& t = config.targets;
    if (std::find(t.begin(), t.end(), ShortName(path)) == t.end()) continue;
    const int64_t out_features = linear->out_features, in_features = linear->in_features;
    linear->lora_A = linear->register_module(
        "lora_A", std::make_shared<LinearImpl>(in_features, config.rank, adapter_options));
    linear->lora_B = linear->register_module(
        "lora_B", std::make_shared<LinearImpl>(config.rank, out_features, adapter_options));
    // kaiming_uniform_(a=sqrt(5)) on [r, in]: bound = sqrt(6 / ((1 + a^2) fan_in)) = 1 / sqrt(in).
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
    at::Tensor a = at::empty({config.rank, in_features}, at::kFloat).uniform_(-bound, bound, generator);
    linear->lora_A->weight.copy_(a);
    linear->lora_B->weight.zero_();
    linear->lora_scaling = config.scaling();
    linear->lora_dropout = config.dropout;
  }
  return absl::OkStatus();
}

bool IsLoraParameterName(const std::string& name) {
  return name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos;
}

std::vector<std::pair<std::string, at::Tensor>> LoraParameters(const LlamaForCausalLM& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : model->named_parameters(/*recurse=*/true))
    if (IsLoraParameterName(item.key())) out.emplace_back(item.key(), item.value());
  return out;
}

absl::Status SavePeftAdapter(const LlamaForCausalLM& model, const LoraConfig& config, const std::string& base_model,
                             const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir.string(), ": cannot create folder (", ec.message(), ")"));
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [name, tensor] : LoraParameters(model)) tensors[kPeftPrefix + name] = tensor;
  if (tensors.empty()) return absl::FailedPreconditionError("the model has no LoRA adapter to save");
  // The keys PEFT's LoraConfig writes, with its defaults where Agora has no such feature.
  const json adapter_config = {
      {"peft_type", "LORA"},          {"task_type", "CAUSAL_LM"},
      {"base_model_name_or_path", base_model},
      {"r", config.rank},             {"lora_alpha", config.alpha},
      {"lora_dropout", config.dropout}, {"target_modules", config.targets},
      {"use_rslora", config.use_rslora}, {"bias", "none"},
      {"fan_in_fan_out", false},      {"use_dora", false},
      {"init_lora_weights", true},    {"inference_mode", true},
      {"modules_to_save", nullptr},   {"rank_pattern", json::object()},
      {"alpha_pattern", json::object()}, {"layers_to_transform", nullptr}};
  AGORA_RETURN_IF_ERROR(SaveTensors(dir / kWeightsFile, tensors));  // with {"format": "pt"}, as PEFT writes
  return WriteStringAtomically(dir / kPeftAdapterConfigFile, adapter_config.dump(2) + "\n");
}

absl::StatusOr<LoraConfig> LoadPeftAdapter(LlamaForCausalLM& model, const fs::path& dir) {
  AGORA_ASSIGN_OR_RETURN(LoraConfig config, ReadPeftAdapterConfig(dir));
  const fs::path path = dir / kWeightsFile;
  AGORA_ASSIGN_OR_RETURN(auto tensors, LoadTensors(path));
  // Adapters are added first (their shapes come from the model), checked against the file, and removed again
  // when anything does not match.
  std::vector<bool> requires_grad;  // AddLora freezes the base; a failed load puts the flags back as they were
  for (const auto& param : model->parameters()) requires_grad.push_back(param.requires_grad());
  AGORA_RETURN_IF_ERROR(AddLora(model, config, at::make_generator<at::CPUGeneratorImpl>(0)));
  auto fail = [&](absl::Status status) {
    for (auto& [name, linear] : Projections(model)) RemoveAdapter(*linear);
    auto params = model->parameters();
    for (size_t i = 0; i < params.size(); ++i) params[i].set_requires_grad(requires_grad[i]);
    return status;
  };
  std::set<std::string> used;
  const auto parameters = LoraParameters(model);
  for (const auto& [name, param] : parameters) {
    auto it = tensors.find(kPeftPrefix + name);
    if (it == tensors.end())
      return fail(absl::NotFoundError(absl::StrCat(path.string(), ": lacks tensor '", kPeftPrefix, name,
                                                   "' that adapter_config.json implies")));
    if (!it->second.sizes().equals(param.sizes()))
      return fail(absl::InvalidArgumentError(absl::StrCat(path.string(), ": tensor '", it->first, "' has shape ",
                                                          c10::str(it->second.sizes()), ", the model expects ",
                                                          c10::str(param.sizes()))));
    used.insert(it->first);
  }
  for (const auto& [name, tensor] : tensors)
    if (!used.count(name))
      return fail(absl::InvalidArgumentError(absl::StrCat(path.string(), ": unexpected tensor '", name,
                                                          "' (not a LoRA weight of the configured targets)")));
  at::NoGradGuard no_grad;
  for (const auto& [name, param] : parameters) param.copy_(tensors.at(kPeftPrefix + name));
  return config;
}

LoraAdaptersDisabled::LoraAdaptersDisabled(LlamaForCausalLM& model) {
  for (auto& [path, linear] : Projections(model)) {
    if (!linear->lora_A || !linear->lora_enabled) continue;
    linear->lora_enabled = false;
    disabled_.push_back(linear);
  }
}

LoraAdaptersDisabled::~LoraAdaptersDisabled() {
  for (LinearImpl* linear : disabled_) linear->lora_enabled = true;
}

LoraRowMask::LoraRowMask(LlamaForCausalLM& model, const at::Tensor& use_adapter) {
  for (auto& [path, linear] : Projections(model)) {
    if (!linear->lora_A || !linear->lora_enabled) continue;
    linear->lora_row_mask = use_adapter.to(linear->lora_A->weight.options()).view({-1, 1, 1});
    masked_.push_back(linear);
  }
}

LoraRowMask::~LoraRowMask() {
  for (LinearImpl* linear : masked_) linear->lora_row_mask = at::Tensor();
}

void MergeLora(LlamaForCausalLM& model) {
  at::NoGradGuard no_grad;
  for (auto& [path, linear] : Projections(model)) {
    if (!linear->lora_A) continue;
    TORCH_CHECK(!linear->quantized, path, ": cannot merge an adapter into a quantised weight; merge into the original "
                "weights instead (agora export --merge loads them)");
    at::Tensor delta = at::matmul(linear->lora_B->weight, linear->lora_A->weight) * linear->lora_scaling;
    linear->weight.copy_((linear->weight.to(at::kFloat) + delta).to(linear->weight.scalar_type()));
    RemoveAdapter(*linear);
  }
}

}  // namespace agora
