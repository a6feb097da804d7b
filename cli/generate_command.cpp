// agora generate: load an HF model folder and answer prompts through the generation engine: --prompt /
// --prompt_file print each continuation; --requests in.jsonl --out out.jsonl answers a request file
// (cli/generation_requests.h), appending results as they finish and resuming where a stopped run left off.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "cli/generation_requests.h"
#include "data/chat_template.h"
#include "data/load_tokenizer.h"
#include "models/checkpoint.h"
#include "models/device_options.h"
#include "models/generation_engine.h"
#include "models/lora.h"

ABSL_DECLARE_FLAG(std::string, out);  // cli/export_command.cpp
ABSL_FLAG(std::string, model, "", "Hugging Face model folder (config.json, *.safetensors, tokenizer.model)");
ABSL_FLAG(std::string, adapter, "", "a PEFT LoRA adapter folder (or an Agora LoRA checkpoint) to apply to --model");
ABSL_FLAG(std::string, prompt, "", "prompt text");
ABSL_FLAG(std::string, prompt_file, "", "file with one prompt per line, answered together");
ABSL_FLAG(std::string, requests, "",
          "JSONL request file: {\"id\", \"prompt\" | \"messages\", sampling fields}; results go to --out");
ABSL_FLAG(std::string, on_bad_line, "error", "generate --requests: error (stop at a bad request line) or skip");
ABSL_FLAG(std::string, chat_template, "",
          "wrap each prompt as a user turn of this chat template (llama2, llama3, plain or vicuna), as training "
          "renders it; empty: the prompt is plain text after BOS. Request lines with messages need one");
ABSL_FLAG(int64_t, max_new_tokens, 64, "tokens to generate per prompt at most");
ABSL_FLAG(double, temperature, 0.0, "sampling temperature; 0 decodes greedily");
ABSL_FLAG(int64_t, top_k, 0, "sample among the k most likely tokens (0: all)");
ABSL_FLAG(double, top_p, 1.0, "sample among the most likely tokens holding this much probability");
ABSL_FLAG(uint64_t, seed, 0, "generate: the sampler's seed; data sandbox-to-groups: the seed of the entries kept");
ABSL_FLAG(int64_t, max_sequences, 32, "sequences decoded together (the engine's cache slots)");
ABSL_FLAG(int64_t, prefix_cache_blocks, 4096, "16-token prompt blocks the prefix cache keeps (0: off)");
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

// What both modes need: the model (with its adapter), the tokenizer, the chat template and the stop ids.
struct Setup {
  LlamaForCausalLM model{nullptr};
  std::unique_ptr<Tokenizer> tokenizer;
  std::optional<ChatTemplateKind> chat;
  std::vector<int64_t> stop_ids;
};

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

// A plain prompt is a user turn of the chat template when there is one, else text after BOS; messages need one.
absl::StatusOr<std::vector<int64_t>> PromptIds(const Setup& setup, const std::optional<std::string>& prompt,
                                               const std::optional<Conversation>& messages) {
  if (messages && !setup.chat) return absl::InvalidArgumentError("messages need --chat_template");
  if (!setup.chat) return Widen(setup.tokenizer->Encode(*prompt, {.add_bos = true}));
  absl::StatusOr<std::vector<int32_t>> ids =
      TokenizePrompt(*setup.chat, messages ? *messages : Conversation{{{"user", *prompt}}}, *setup.tokenizer);
  if (!ids.ok()) return ids.status();
  return Widen(*ids);
}

SamplingOptions DefaultSampling(const Setup& setup) {
  SamplingOptions s;
  s.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  s.temperature = absl::GetFlag(FLAGS_temperature);
  s.top_k = absl::GetFlag(FLAGS_top_k);
  s.top_p = absl::GetFlag(FLAGS_top_p);
  s.seed = absl::GetFlag(FLAGS_seed);
  s.stop_ids = setup.stop_ids;
  return s;
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

// --prompt / --prompt_file: every prompt through one engine run, printed in order with its prompt.
int AnswerPrompts(Setup& setup) {
  absl::StatusOr<std::vector<std::string>> prompts = ReadPrompts();
  if (!prompts.ok()) return Fail(prompts.status());
  GenerationEngine engine(setup.model, MakeEngineOptions(setup));
  std::vector<std::vector<int64_t>> prompt_ids, outputs(prompts->size());
  for (size_t i = 0; i < prompts->size(); ++i) {
    absl::StatusOr<std::vector<int64_t>> ids = PromptIds(setup, (*prompts)[i], std::nullopt);
    if (!ids.ok()) return Fail(ids.status());
    prompt_ids.push_back(*ids);
    SamplingOptions sampling = DefaultSampling(setup);
    sampling.seed += i;  // each prompt its own draws
    if (absl::Status s = engine.Submit({std::to_string(i), *ids, sampling}); !s.ok()) return Fail(s);
  }
  engine.Run([&outputs](GenerationResult r) { outputs[std::stoul(r.id)] = std::move(r.tokens); });
  for (size_t i = 0; i < outputs.size(); ++i) {
    // Decode prompt and continuation together: sentencepiece drops the leading space of the first piece only.
    std::vector<int32_t> ids(prompt_ids[i].begin(), prompt_ids[i].end());
    ids.insert(ids.end(), outputs[i].begin(), outputs[i].end());
    std::printf("%s\n", setup.tokenizer->Decode(ids).c_str());
  }
  return 0;
}

// Requests done, rates and the prefix cache's share of prompt tokens: on one rewritten line on a terminal, a line
// every ten seconds otherwise, and once at the end.
class Progress {
 public:
  explicit Progress(int64_t total) : total_(total), terminal_(isatty(STDERR_FILENO) == 1) {}
  void Update(const EngineStats& stats, int64_t done, bool last) {
    const double elapsed = Seconds(start_);
    if (!last && Seconds(printed_) < (terminal_ ? 0.5 : 10.0)) return;
    printed_ = Clock::now();
    const double hit = stats.prompt_tokens > 0 ? 100.0 * stats.cached_prompt_tokens / stats.prompt_tokens : 0.0;
    std::fprintf(stderr, "%s%d/%d requests in %.2f s, %.2f requests/s, %.1f generated tokens/s, prefix cache %.0f%% "
                 "of prompt tokens%s", terminal_ ? "\r" : "", static_cast<int>(done), static_cast<int>(total_),
                 elapsed, done / std::max(elapsed, 1e-9), stats.generated_tokens / std::max(elapsed, 1e-9), hit,
                 terminal_ && !last ? "" : "\n");
  }

 private:
  using Clock = std::chrono::steady_clock;
  static double Seconds(Clock::time_point since) {
    return std::chrono::duration<double>(Clock::now() - since).count();
  }
  int64_t total_;
  bool terminal_;
  Clock::time_point start_ = Clock::now(), printed_ = Clock::now();
};

// --requests FILE --out FILE.
int AnswerRequests(Setup& setup) {
  const std::string out_path = absl::GetFlag(FLAGS_out);
  if (out_path.empty()) return Fail(absl::InvalidArgumentError("--requests needs --out RESULTS.jsonl"));
  const std::string policy = absl::GetFlag(FLAGS_on_bad_line);
  if (policy != "error" && policy != "skip")
    return Fail(absl::InvalidArgumentError(absl::StrCat("--on_bad_line: expected error or skip, got '", policy, "'")));
  int64_t skipped = 0;
  const std::string requests_path = absl::GetFlag(FLAGS_requests);
  absl::StatusOr<std::vector<RequestLine>> lines =
      ReadRequestLines(requests_path, DefaultSampling(setup), policy == "skip", &skipped);
  if (!lines.ok()) return Fail(lines.status());
  absl::StatusOr<ResultsFile> results = ResultsFile::Open(out_path);
  if (!results.ok()) return Fail(results.status());
  GenerationEngine engine(setup.model, MakeEngineOptions(setup));
  int64_t queued = 0;
  for (const RequestLine& line : *lines) {
    if (results->finished().count(line.id) > 0) continue;
    const std::string where = absl::StrCat(requests_path, ":", line.line, ": ");
    absl::StatusOr<std::vector<int64_t>> ids =
        line.prompt_ids ? *line.prompt_ids : PromptIds(setup, line.prompt, line.messages);
    if (!ids.ok()) return Fail(absl::InvalidArgumentError(absl::StrCat(where, ids.status().message())));
    SamplingOptions sampling = line.sampling;
    for (const std::string& choice : line.choices)
      sampling.choices.push_back(Widen(setup.tokenizer->Encode(choice, {.add_bos = false})));
    if (absl::Status s = engine.Submit({line.id, *ids, sampling}); !s.ok())
      return Fail(absl::InvalidArgumentError(absl::StrCat(where, s.message())));
    ++queued;
  }
  const int64_t already = static_cast<int64_t>(lines->size()) - queued;
  std::fprintf(stderr, "%d requests in %s (%d bad lines skipped), %d already in %s, %d to answer\n",
               static_cast<int>(lines->size()), requests_path.c_str(), static_cast<int>(skipped),
               static_cast<int>(already), out_path.c_str(), static_cast<int>(queued));
  Progress progress(queued);
  int64_t done = 0;
  absl::Status write = absl::OkStatus();
  engine.Run([&](GenerationResult r) {
    if (write.ok()) write = results->Append(r);
    progress.Update(engine.stats(), ++done, false);
  });
  progress.Update(engine.stats(), done, true);
  return write.ok() ? 0 : Fail(write);
}

}  // namespace

int RunGenerate(const std::vector<char*>& positional_args) {
  if (positional_args.size() > 1)
    return Fail(absl::InvalidArgumentError(absl::StrCat("unexpected argument '", positional_args[1], "'")));
  absl::StatusOr<Setup> setup = Load();
  if (!setup.ok()) return Fail(setup.status());
  return absl::GetFlag(FLAGS_requests).empty() ? AnswerPrompts(*setup) : AnswerRequests(*setup);
}

}  // namespace agora::cli
