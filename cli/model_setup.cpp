#include "cli/model_setup.h"

#include <algorithm>

#include "absl/flags/flag.h"
#include "data/load_tokenizer.h"
#include "models/checkpoint.h"
#include "models/device_options.h"
#include "models/lora.h"

ABSL_FLAG(std::string, model, "", "Hugging Face model folder (config.json, *.safetensors, tokenizer.model)");
ABSL_FLAG(std::string, adapter, "", "a PEFT LoRA adapter folder (or an Agora LoRA checkpoint) to apply to --model");
ABSL_FLAG(std::string, chat_template, "",
          "wrap each prompt as a user turn of this chat template (llama2, llama3, plain or vicuna), as training "
          "renders it; empty: the prompt is plain text after BOS. Request lines with messages need one");
ABSL_FLAG(int64_t, max_sequences, 32, "sequences decoded together (the engine's cache slots)");
ABSL_FLAG(int64_t, prefix_cache_blocks, 4096, "16-token prompt blocks the prefix cache keeps (0: off)");
ABSL_FLAG(std::string, device, "auto", "auto, cpu or cuda[:N]");
ABSL_FLAG(std::string, dtype, "auto", "auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16 or float16");

namespace agora::cli {

absl::StatusOr<Setup> Load() {
  const std::string model_dir = absl::GetFlag(FLAGS_model);
  if (model_dir.empty()) return absl::InvalidArgumentError("--model DIR is required");
  absl::StatusOr<ModelOptions> options = ResolveModelOptions(absl::GetFlag(FLAGS_device), absl::GetFlag(FLAGS_dtype));
  if (!options.ok()) return options.status();
  Setup setup;
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(model_dir);
  if (!tokenizer.ok()) return tokenizer.status();
  setup.tokenizer = *std::move(tokenizer);
  absl::StatusOr<LoadedModel> loaded = LoadModel(model_dir, *options);
  if (!loaded.ok()) return loaded.status();
  setup.model = loaded->model;
  if (const std::string adapter = absl::GetFlag(FLAGS_adapter); !adapter.empty()) {
    if (absl::StatusOr<LoraConfig> lora = LoadPeftAdapter(setup.model, adapter); !lora.ok()) return lora.status();
    setup.has_adapter = true;
  }
  if (const std::string name = absl::GetFlag(FLAGS_chat_template); !name.empty()) {
    absl::StatusOr<ChatTemplateKind> kind = ParseChatTemplateKind(name);
    if (!kind.ok()) return kind.status();
    setup.chat = *kind;
  }
  setup.stop_ids = loaded->config.eos_token_ids;
  if (setup.stop_ids.empty() && setup.tokenizer->eos_id()) setup.stop_ids.push_back(*setup.tokenizer->eos_id());
  // A Llama-3 chat turn ends with <|eot_id|>, which base-model configs do not list among their EOS ids.
  if (setup.chat == ChatTemplateKind::kLlama3) {
    if (std::optional<int32_t> eot = setup.tokenizer->PieceToId("<|eot_id|>");
        eot && std::find(setup.stop_ids.begin(), setup.stop_ids.end(), *eot) == setup.stop_ids.end())
      setup.stop_ids.push_back(*eot);
  }
  return setup;
}

std::vector<int64_t> Widen(const std::vector<int32_t>& ids) { return {ids.begin(), ids.end()}; }

absl::StatusOr<std::vector<int64_t>> PromptIds(const Setup& setup, const std::optional<std::string>& prompt,
                                               const std::optional<Conversation>& messages) {
  if (messages && !setup.chat) return absl::InvalidArgumentError("messages need --chat_template");
  if (!setup.chat) return Widen(setup.tokenizer->Encode(*prompt, {.add_bos = true}));
  absl::StatusOr<std::vector<int32_t>> ids =
      TokenizePrompt(*setup.chat, messages ? *messages : Conversation{{{"user", *prompt}}}, *setup.tokenizer);
  if (!ids.ok()) return ids.status();
  return Widen(*ids);
}

EngineOptions MakeEngineOptions(const Setup& setup) {
  EngineOptions o;
  o.max_sequences = absl::GetFlag(FLAGS_max_sequences);
  o.prefix_cache_blocks = absl::GetFlag(FLAGS_prefix_cache_blocks);
  const Tokenizer* tokenizer = setup.tokenizer.get();
  o.detokenize = [tokenizer](const std::vector<int64_t>& ids) {
    return tokenizer->Decode(std::vector<int32_t>(ids.begin(), ids.end()));
  };
  return o;
}

}  // namespace agora::cli
