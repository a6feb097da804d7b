#include "models/generation_engine.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "models/lora.h"

namespace agora {

struct GenerationEngine::Sequence {
  GenerationRequest request;
  std::vector<int64_t> context;  // prompt, then the generated tokens
  std::vector<int64_t> generated;
  at::Generator generator;
  std::optional<ChoiceTrie> choices;
  int64_t node = ChoiceTrie::kRoot;  // where the output stands in `choices`
  int64_t max_new_tokens = 0;
  int64_t cached = 0;   // prompt tokens restored from the prefix cache
  std::optional<std::string> text;  // set when a stop string ended the output: the text before it
  std::string finish_reason;
};

GenerationEngine::GenerationEngine(LlamaForCausalLM model, EngineOptions options)
    : model_(std::move(model)),
      options_(std::move(options)),
      prefix_cache_(options_.prefix_block, options_.prefix_cache_blocks) {
  TORCH_CHECK(options_.max_sequences > 0 && options_.prefill_chunk > 0 && options_.prefix_block > 0,
              "GenerationEngine: max_sequences, prefill_chunk and prefix_block must be positive");
}

GenerationEngine::~GenerationEngine() = default;

absl::Status GenerationEngine::Submit(GenerationRequest request) {
  const std::string name = absl::StrCat("request '", request.id, "'");
  const SamplingOptions& s = request.sampling;
  if (request.prompt.empty()) return absl::InvalidArgumentError(absl::StrCat(name, ": the prompt has no tokens"));
  if (s.max_new_tokens < 1 && s.choices.empty())
    return absl::InvalidArgumentError(absl::StrCat(name, ": max_new_tokens must be at least 1"));
  // Checked here, not met as a torch error inside sampling (which would abort the process).
  if (!std::isfinite(s.temperature) || s.temperature < 0)
    return absl::InvalidArgumentError(absl::StrCat(name, ": temperature must be >= 0, got ", s.temperature));
  if (!(s.top_p > 0 && s.top_p <= 1))
    return absl::InvalidArgumentError(absl::StrCat(name, ": top_p must be in (0, 1], got ", s.top_p));
  if (s.top_k < 0) return absl::InvalidArgumentError(absl::StrCat(name, ": top_k must be >= 0, got ", s.top_k));
  if (!(s.min_p >= 0 && s.min_p <= 1))
    return absl::InvalidArgumentError(absl::StrCat(name, ": min_p must be in [0, 1], got ", s.min_p));
  if (!(s.repetition_penalty > 0) || !std::isfinite(s.repetition_penalty))
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": repetition_penalty must be > 0, got ", s.repetition_penalty));
  if (s.no_repeat_ngram_size < 0)
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": no_repeat_ngram_size must be >= 0, got ", s.no_repeat_ngram_size));
  const int64_t vocab = model_->config().vocab_size;
  for (int64_t t : request.prompt)
    if (t < 0 || t >= vocab)
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": token ", t, " is outside the vocabulary [0, ", vocab, ")"));
  for (const auto& [t, bias] : s.logit_bias)
    if (t < 0 || t >= vocab)
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": logit_bias token ", t, " is outside the vocabulary [0, ", vocab, ")"));
  if (!s.stop_strings.empty() && !options_.detokenize)
    return absl::InvalidArgumentError(absl::StrCat(name, ": stop strings need the engine's detokenizer"));
  auto sequence = std::make_unique<Sequence>();
  sequence->max_new_tokens = s.max_new_tokens;
  if (!s.choices.empty()) {
    for (const auto& choice : s.choices)
      if (choice.empty()) return absl::InvalidArgumentError(absl::StrCat(name, ": a choice has no tokens"));
    sequence->choices.emplace(s.choices);
    sequence->max_new_tokens = sequence->choices->longest() + 1;
  }
  const int64_t positions = static_cast<int64_t>(request.prompt.size()) + sequence->max_new_tokens;
  if (positions > model_->config().max_position_embeddings)
    return absl::InvalidArgumentError(absl::StrCat(name, ": prompt (", request.prompt.size(), ") + max_new_tokens (",
                                                   sequence->max_new_tokens, ") exceeds max_position_embeddings (",
                                                   model_->config().max_position_embeddings, ")"));
  sequence->generator = at::make_generator<at::CPUGeneratorImpl>(s.seed);
  sequence->context = request.prompt;
  sequence->request = std::move(request);
  waiting_.push_back(std::move(sequence));
  return absl::OkStatus();
}

void GenerationEngine::Run(const std::function<void(GenerationResult)>& on_finish) {
  torch::NoGradGuard no_grad;
  // The slot cache fits the longest queued request; a later, longer queue gets a new one.
  int64_t capacity = 1;
  for (const auto& s : waiting_)
    capacity = std::max<int64_t>(capacity, static_cast<int64_t>(s->request.prompt.size()) + s->max_new_tokens);
  EnsureCache(capacity);
  while (!waiting_.empty() || !running_.empty()) {
    while (!waiting_.empty() && static_cast<int64_t>(running_.size()) < options_.max_sequences) {
      std::unique_ptr<Sequence> next = std::move(waiting_.front());
      waiting_.pop_front();
      Admit(std::move(next), on_finish);
    }
    if (!running_.empty()) DecodeStep(on_finish);
  }
}

void GenerationEngine::EnsureCache(int64_t capacity) {
  if (!cache_ || cache_->capacity() < capacity)
    cache_.emplace(model_->config(), options_.max_sequences, capacity, model_->options().dtype,
                   model_->options().device);
}

absl::StatusOr<std::vector<double>> GenerationEngine::ContinuationLogProbs(const std::vector<int64_t>& prompt,
                                                                           const std::vector<int64_t>& continuation) {
  TORCH_CHECK(running_.empty(), "GenerationEngine: ContinuationLogProbs while sequences are running");
  const int64_t p = static_cast<int64_t>(prompt.size()), n = p + static_cast<int64_t>(continuation.size());
  if (prompt.empty() || continuation.empty())
    return absl::InvalidArgumentError("ContinuationLogProbs: the prompt and the continuation need tokens");
  if (n > model_->config().max_position_embeddings)
    return absl::InvalidArgumentError(absl::StrCat("ContinuationLogProbs: ", n, " tokens exceed max_position_embeddings (",
                                                   model_->config().max_position_embeddings, ")"));
  torch::NoGradGuard no_grad;
  EnsureCache(n);
  std::vector<int64_t> all = prompt;
  all.insert(all.end(), continuation.begin(), continuation.end());
  // Only the prompt's blocks are looked up and kept: they are what the other answers to the question share.
  const int64_t cached = prefix_cache_.Restore(prompt, *cache_, /*slot=*/0);
  stats_.prompt_tokens += n;
  stats_.cached_prompt_tokens += cached;
  const at::Device device = model_->options().device;
  SlotKVCache::SequenceView view(*cache_, 0);
  const at::Tensor ids = at::tensor(std::vector<int64_t>(all.begin() + cached, all.end()), at::kLong).view({1, -1});
  const at::Tensor positions = at::arange(cached, n, at::kLong).view({1, -1});
  const at::Tensor hidden = model_->forward(ids.to(device), positions.to(device), AttentionMask{}, &view);
  prefix_cache_.Remember(prompt, p, *cache_, 0);
  cache_->Clear(0);
  // Position t predicts token t + 1: the continuation's tokens are predicted at positions p - 1 .. n - 2.
  const at::Tensor logits = model_->Logits(hidden.squeeze(0).narrow(0, p - 1 - cached, n - p)).to(at::kFloat);
  const at::Tensor targets = at::tensor(continuation, at::kLong).to(device).unsqueeze(1);
  const at::Tensor picked = logits.log_softmax(-1).gather(1, targets).squeeze(1).to(at::kCPU, at::kDouble);
  return std::vector<double>(picked.data_ptr<double>(), picked.data_ptr<double>() + picked.numel());
}

void GenerationEngine::Admit(std::unique_ptr<Sequence> s, const std::function<void(GenerationResult)>& on_finish) {
  const int64_t slot = static_cast<int64_t>(running_.size());
  const std::vector<int64_t>& prompt = s->request.prompt;
  const int64_t length = static_cast<int64_t>(prompt.size());
  const at::Device device = model_->options().device;
  const uint64_t weights = s->request.use_adapter ? 0 : 1;
  s->cached = prefix_cache_.Restore(prompt, *cache_, slot, weights);
  stats_.prompt_tokens += length;
  stats_.cached_prompt_tokens += s->cached;
  // The rest of the prompt in chunks, each attending to everything before it; the last position's logits give
  // the first token.
  SlotKVCache::SequenceView view(*cache_, slot);
  std::optional<LoraAdaptersDisabled> base;
  if (!s->request.use_adapter) base.emplace(model_);
  at::Tensor hidden;
  for (int64_t begin = s->cached; begin < length; begin += options_.prefill_chunk) {
    const int64_t end = std::min(length, begin + options_.prefill_chunk);
    const at::Tensor ids =
        at::tensor(std::vector<int64_t>(prompt.begin() + begin, prompt.begin() + end), at::kLong).view({1, -1});
    const at::Tensor positions = at::arange(begin, end, at::kLong).view({1, -1});
    hidden = model_->forward(ids.to(device), positions.to(device), AttentionMask{}, &view);
  }
  prefix_cache_.Remember(prompt, length, *cache_, slot, weights);
  const at::Tensor logits = model_->Logits(hidden.select(1, hidden.size(1) - 1)).squeeze(0);
  if (TakeNextToken(*s, logits.to(at::kCPU, at::kFloat).contiguous())) {
    on_finish(Finish(*s));
    cache_->Clear(slot);
    return;
  }
  running_.push_back(std::move(s));
}

void GenerationEngine::DecodeStep(const std::function<void(GenerationResult)>& on_finish) {
  const int64_t rows = static_cast<int64_t>(running_.size());
  const at::Device device = model_->options().device;
  std::vector<int64_t> last(rows);
  for (int64_t b = 0; b < rows; ++b) last[b] = running_[b]->context.back();
  SlotKVCache::DecodeView view(*cache_, rows);
  AttentionMask mask;
  mask.causal = false;  // each row sees its own positions through key_valid
  mask.key_valid = view.key_valid();
  const at::Tensor ids = at::tensor(last, at::kLong).view({rows, 1}).to(device);
  std::vector<uint8_t> use_adapter(rows);
  for (int64_t b = 0; b < rows; ++b) use_adapter[b] = running_[b]->request.use_adapter;
  std::optional<LoraRowMask> adapter_rows;
  if (std::find(use_adapter.begin(), use_adapter.end(), 0) != use_adapter.end())
    adapter_rows.emplace(model_, at::tensor(use_adapter, at::kByte).to(device, at::kBool));
  const at::Tensor hidden = model_->forward(ids, view.positions(), mask, &view);
  // One device-to-host copy per step: every row's logits.
  const at::Tensor logits = model_->Logits(hidden.squeeze(1)).to(at::kCPU, at::kFloat).contiguous();
  ++stats_.decode_steps;
  std::vector<bool> finished(rows);
  // Each row is adjusted in place: the step's logits are this loop's alone.
  for (int64_t b = 0; b < rows; ++b) finished[b] = TakeNextToken(*running_[b], logits[b]);
  // Finished sequences leave; the last running one takes each freed slot, so the running ones stay in [0, n).
  for (int64_t b = rows - 1; b >= 0; --b) {
    if (!finished[b]) continue;
    on_finish(Finish(*running_[b]));
    const int64_t tail = static_cast<int64_t>(running_.size()) - 1;
    if (b == tail) {
      cache_->Clear(b);
    } else {
      cache_->Move(tail, b);
      running_[b] = std::move(running_[tail]);
    }
    running_.pop_back();
  }
}

bool GenerationEngine::TakeNextToken(Sequence& s, at::Tensor logits) {
  const SamplingOptions& o = s.request.sampling;
  const auto is_stop = [&o](int64_t t) {
    return std::find(o.stop_ids.begin(), o.stop_ids.end(), t) != o.stop_ids.end();
  };
  std::vector<int64_t> allowed;
  if (s.choices) {
    allowed = s.choices->Next(s.node);
    if (s.choices->Complete(s.node)) allowed.insert(allowed.end(), o.stop_ids.begin(), o.stop_ids.end());
  }
  AdjustLogits(logits, o, s.context, s.choices ? &allowed : nullptr);
  const int64_t token = SampleToken(logits, o, s.generator);
  s.generated.push_back(token);
  s.context.push_back(token);
  ++stats_.generated_tokens;
  if (is_stop(token)) {
    s.finish_reason = "stop";
    return true;
  }
  if (s.choices) {
    s.node = s.choices->Follow(s.node, token);
    if (s.choices->Complete(s.node) && s.choices->Next(s.node).empty()) {
      s.finish_reason = "stop";
      return true;
    }
  }
  if (!o.stop_strings.empty()) {
    const std::string text = options_.detokenize(s.generated);
    size_t cut = std::string::npos;
    for (const std::string& stop : o.stop_strings)
      if (!stop.empty()) cut = std::min(cut, text.find(stop));
    if (cut != std::string::npos) {
      s.text = text.substr(0, cut);
      s.finish_reason = "stop";
      return true;
    }
  }
  if (static_cast<int64_t>(s.generated.size()) >= s.max_new_tokens) {
    s.finish_reason = "length";
    return true;
  }
  return false;
}

GenerationResult GenerationEngine::Finish(Sequence& s) {
  ++stats_.finished;
  GenerationResult r;
  r.id = s.request.id;
  r.tokens = s.generated;
  r.finish_reason = s.finish_reason;
  r.prompt_tokens = static_cast<int64_t>(s.request.prompt.size());
  r.cached_prompt_tokens = s.cached;
  if (options_.detokenize) r.text = s.text ? *s.text : options_.detokenize(s.generated);
  return r;
}

}  // namespace agora
