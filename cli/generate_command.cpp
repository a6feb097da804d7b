// agora generate: load an HF model folder, tokenize the prompts, decode a continuation for each, print it.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "models/device_options.h"
#include "data/chat_template.h"
#include "data/load_tokenizer.h"
#include "models/checkpoint.h"
#include "models/generation.h"
#include "models/lora.h"

ABSL_FLAG(std::string, model, "", "Hugging Face model folder (config.json, *.safetensors, tokenizer.model)");
ABSL_FLAG(std::string, adapter, "", "a PEFT LoRA adapter folder (or an Agora LoRA checkpoint) to apply to --model");
ABSL_FLAG(std::string, prompt, "", "prompt text");
ABSL_FLAG(std::string, prompt_file, "", "file with one prompt per line, decoded together as one batch");
ABSL_FLAG(std::string, chat_template, "",
          "wrap each prompt as a user turn of this chat template (llama2, llama3, plain or vicuna), as training renders it; "
          "empty: the prompt is plain text after BOS");
ABSL_FLAG(int64_t, max_new_tokens, 64, "tokens to generate per prompt at most");
ABSL_FLAG(double, temperature, 0.0, "sampling temperature; 0 decodes greedily");
ABSL_FLAG(int64_t, top_k, 0, "sample among the k most likely tokens (0: all)");
ABSL_FLAG(double, top_p, 1.0, "sample among the most likely tokens holding this much probability");
ABSL_FLAG(uint64_t, seed, 0, "generate: the sampler's seed; data sandbox-to-groups: the seed of the entries kept");
ABSL_FLAG(std::string, device, "auto", "auto, cpu or cuda[:N]");
ABSL_FLAG(std::string, dtype, "auto", "auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16 or float16");

namespace agora::cli {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "agora generate: %s\n", std::string(status.message()).c_str());
  return 1;
}

absl::StatusOr<std::vector<std::string>> ReadPrompts() {
  std::vector<std::string> prompts;
  if (!absl::GetFlag(FLAGS_prompt).empty()) prompts.push_back(absl::GetFlag(FLAGS_prompt));
  if (const std::string file = absl::GetFlag(FLAGS_prompt_file); !file.empty()) {
    std::ifstream in(file);
    if (!in) return absl::NotFoundError(absl::StrCat("--prompt_file ", file, ": cannot open"));
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) prompts.push_back(line);
  }
  if (prompts.empty()) return absl::InvalidArgumentError("give --prompt TEXT or --prompt_file FILE");
  return prompts;
}

}  // namespace

int RunGenerate(const std::vector<char*>& positional_args) {
  if (positional_args.size() > 1) return Fail(absl::InvalidArgumentError(absl::StrCat("unexpected argument '", positional_args[1], "'")));
  const std::string model_dir = absl::GetFlag(FLAGS_model);
  if (model_dir.empty()) return Fail(absl::InvalidArgumentError("--model DIR is required"));
  absl::StatusOr<std::vector<std::string>> prompts = ReadPrompts();
  if (!prompts.ok()) return Fail(prompts.status());
  absl::StatusOr<ModelOptions> options = ResolveModelOptions(absl::GetFlag(FLAGS_device), absl::GetFlag(FLAGS_dtype));
  if (!options.ok()) return Fail(options.status());
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(model_dir);
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  absl::StatusOr<LoadedModel> loaded = LoadModel(model_dir, *options);
  if (!loaded.ok()) return Fail(loaded.status());
  if (const std::string adapter = absl::GetFlag(FLAGS_adapter); !adapter.empty()) {
    if (absl::StatusOr<LoraConfig> lora = LoadPeftAdapter(loaded->model, adapter); !lora.ok()) return Fail(lora.status());
  }

  std::optional<ChatTemplateKind> chat;
  if (const std::string name = absl::GetFlag(FLAGS_chat_template); !name.empty()) {
    absl::StatusOr<ChatTemplateKind> kind = ParseChatTemplateKind(name);
    if (!kind.ok()) return Fail(kind.status());
    chat = *kind;
  }
  std::vector<std::vector<int64_t>> prompt_ids;
  for (const std::string& p : *prompts) {
    std::vector<int32_t> ids;
    if (chat) {
      absl::StatusOr<std::vector<int32_t>> rendered = TokenizePrompt(*chat, Conversation{{{"user", p}}}, **tokenizer);
      if (!rendered.ok()) return Fail(rendered.status());
      ids = *std::move(rendered);
    } else {
      ids = (*tokenizer)->Encode(p, {.add_bos = true});
    }
    prompt_ids.emplace_back(ids.begin(), ids.end());
  }
  SamplingOptions sampling;
  sampling.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  sampling.temperature = absl::GetFlag(FLAGS_temperature);
  sampling.top_k = absl::GetFlag(FLAGS_top_k);
  sampling.top_p = absl::GetFlag(FLAGS_top_p);
  sampling.seed = absl::GetFlag(FLAGS_seed);
  sampling.stop_ids = loaded->config.eos_token_ids;
  if (sampling.stop_ids.empty() && (*tokenizer)->eos_id()) sampling.stop_ids.push_back(*(*tokenizer)->eos_id());
  // A Llama-3 chat turn ends with <|eot_id|>, which base-model configs do not list among their EOS ids.
  if (chat == ChatTemplateKind::kLlama3) {
    if (std::optional<int32_t> eot = (*tokenizer)->PieceToId("<|eot_id|>"); eot &&
        std::find(sampling.stop_ids.begin(), sampling.stop_ids.end(), *eot) == sampling.stop_ids.end())
      sampling.stop_ids.push_back(*eot);
  }

  std::vector<std::vector<int64_t>> outputs = Generate(loaded->model, prompt_ids, sampling);
  for (size_t i = 0; i < outputs.size(); ++i) {
    // Decode prompt and continuation together: sentencepiece drops the leading space of the first piece only.
    std::vector<int32_t> ids(prompt_ids[i].begin(), prompt_ids[i].end());
    ids.insert(ids.end(), outputs[i].begin(), outputs[i].end());
    std::printf("%s\n", (*tokenizer)->Decode(ids).c_str());
  }
  return 0;
}

}  // namespace agora::cli
