// A model as the generation engine serves it, with what turns text into its prompts and its tokens back into text:
// what `agora generate`, `agora eval` and `agora simulate` load from a model folder (and an adapter).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/chat_template.h"
#include "data/record_formats.h"
#include "data/tokenizer.h"
#include "models/llama.h"

namespace agora {

struct ServingSpec {
  std::string model_dir;      // HF folder: config.json, *.safetensors, tokenizer
  std::string adapter_dir;    // a PEFT adapter folder applied (unmerged) on top; "" = none
  std::string chat_template;  // "" = prompts are plain text after BOS; else llama2 | llama3 | plain | vicuna
  std::string device = "auto";
  std::string dtype = "auto";
  // The projections stored quantised (QLoRA's base, models/quantized_weight.h); decoding then takes the fused
  // dequantise + GEMV kernel on CUDA.
  BaseQuantization quantize_base = BaseQuantization::kNone;
};

struct ServingModel {
  LlamaForCausalLM model{nullptr};
  std::unique_ptr<Tokenizer> tokenizer;
  std::optional<ChatTemplateKind> chat;
  std::vector<int64_t> stop_ids;  // the config's EOS ids (else the tokenizer's), and Llama-3's <|eot_id|> in chat
  bool has_adapter = false;
};

absl::StatusOr<ServingModel> LoadServingModel(const ServingSpec& spec);

// A plain prompt is a user turn of the chat template when there is one, else text after BOS; messages need one.
absl::StatusOr<std::vector<int64_t>> PromptIds(const ServingModel& served, const std::optional<std::string>& prompt,
                                               const std::optional<Conversation>& messages);

// The tokenizer as the engine's detokenizer (EngineOptions::detokenize); `served` must outlive it.
std::function<std::string(const std::vector<int64_t>&)> Detokenizer(const ServingModel& served);

std::vector<int64_t> Widen(const std::vector<int32_t>& ids);

}  // namespace agora
