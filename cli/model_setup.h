// What the commands that run a model (generate, eval) share: the flags that pick the model, its adapter, device,
// dtype and chat template, loading them, and the engine options.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/chat_template.h"
#include "data/tokenizer.h"
#include "models/generation_engine.h"
#include "models/llama.h"

namespace agora::cli {

// The model (with --adapter applied), its tokenizer, --chat_template and the ids that end a turn.
struct Setup {
  LlamaForCausalLM model{nullptr};
  std::unique_ptr<Tokenizer> tokenizer;
  std::optional<ChatTemplateKind> chat;
  std::vector<int64_t> stop_ids;  // the config's EOS ids (else the tokenizer's), and Llama-3's <|eot_id|> in chat
  bool has_adapter = false;
};

// From --model, --adapter, --chat_template, --device and --dtype.
absl::StatusOr<Setup> Load();

// A plain prompt is a user turn of the chat template when there is one, else text after BOS; messages need one.
absl::StatusOr<std::vector<int64_t>> PromptIds(const Setup& setup, const std::optional<std::string>& prompt,
                                               const std::optional<Conversation>& messages);

// --max_sequences, --prefix_cache_blocks, and the tokenizer as the engine's detokenizer.
EngineOptions MakeEngineOptions(const Setup& setup);

std::vector<int64_t> Widen(const std::vector<int32_t>& ids);

}  // namespace agora::cli
