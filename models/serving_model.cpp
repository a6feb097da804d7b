#include "models/serving_model.h"

#include <algorithm>

#include "data/load_tokenizer.h"
#include "models/checkpoint.h"
#include "models/config.h"
#include "models/device_options.h"
#include "models/lora.h"

namespace agora {

absl::StatusOr<ServingModel> LoadServingModel(const ServingSpec& spec) {
  absl::StatusOr<ModelOptions> options = ResolveModelOptions(spec.device, spec.dtype);
  if (!options.ok()) return options.status();
  options->quantize_base = spec.quantize_base;
  ServingModel served;
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(spec.model_dir);
  if (!tokenizer.ok()) return tokenizer.status();
  served.tokenizer = *std::move(tokenizer);
  absl::StatusOr<LlamaConfig> config = LoadLlamaConfig(std::filesystem::path(spec.model_dir) / "config.json");
  if (!config.ok()) return config.status();
  if (absl::Status s = CheckTokenizerFitsModel(*served.tokenizer, config->vocab_size, spec.model_dir); !s.ok())
    return s;
  absl::StatusOr<LoadedModel> loaded = LoadModel(spec.model_dir, *options);
  if (!loaded.ok()) return loaded.status();
  served.model = loaded->model;
  if (!spec.adapter_dir.empty()) {
    if (absl::StatusOr<LoraConfig> lora = LoadPeftAdapter(served.model, spec.adapter_dir); !lora.ok())
      return lora.status();
    served.has_adapter = true;
  }
  if (!spec.chat_template.empty()) {
    absl::StatusOr<ChatTemplateKind> kind = ParseChatTemplateKind(spec.chat_template);
    if (!kind.ok()) return kind.status();
    served.chat = *kind;
  }
  served.stop_ids = loaded->config.eos_token_ids;
  if (served.stop_ids.empty() && served.tokenizer->eos_id()) served.stop_ids.push_back(*served.tokenizer->eos_id());
  // A Llama-3 chat turn ends with <|eot_id|>, which base-model configs do not list among their EOS ids.
  if (served.chat == ChatTemplateKind::kLlama3) {
    if (std::optional<int32_t> eot = served.tokenizer->PieceToId("<|eot_id|>");
        eot && std::find(served.stop_ids.begin(), served.stop_ids.end(), *eot) == served.stop_ids.end())
      served.stop_ids.push_back(*eot);
  }
  return served;
}

absl::StatusOr<std::vector<int64_t>> PromptIds(const ServingModel& served, const std::optional<std::string>& prompt,
                                               const std::optional<Conversation>& messages) {
  if (messages && !served.chat) return absl::InvalidArgumentError("messages need a chat template");
  if (!served.chat) return Widen(served.tokenizer->Encode(*prompt, {.add_bos = true}));
  absl::StatusOr<std::vector<int32_t>> ids =
      TokenizePrompt(*served.chat, messages ? *messages : Conversation{{{"user", *prompt}}}, *served.tokenizer);
  if (!ids.ok()) return ids.status();
  return Widen(*ids);
}

std::function<std::string(const std::vector<int64_t>&)> Detokenizer(const ServingModel& served) {
  const Tokenizer* tokenizer = served.tokenizer.get();
  return [tokenizer](const std::vector<int64_t>& ids) {
    return tokenizer->Decode(std::vector<int32_t>(ids.begin(), ids.end()));
  };
}

std::vector<int64_t> Widen(const std::vector<int32_t>& ids) { return {ids.begin(), ids.end()}; }

}  // namespace agora
