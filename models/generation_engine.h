// A generation engine for many requests at once, apart from the model (which stays stateless) and owning its
// caches. Continuous batching: requests wait in a queue; every step decodes one token for each running sequence;
// a finished sequence leaves at once and a waiting request takes its slot, its prompt prefilled in chunks (after
// whatever the prefix cache already holds of it). Each running sequence has its own length in the slot cache, so
// nothing is padded and no row waits for the longest. Each request samples with its own options and generator,
// so its tokens do not depend on which others are decoded beside it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>

#include "absl/status/status.h"
#include "models/choice_trie.h"
#include "models/llama.h"
#include "models/prefix_cache.h"
#include "models/sampling.h"
#include "models/slot_kv_cache.h"

namespace agora {

struct EngineOptions {
  int64_t max_sequences = 32;      // running sequences (cache slots); a step decodes up to this many rows
  int64_t prefill_chunk = 512;     // prompt tokens per forward while prefilling
  int64_t prefix_block = 16;       // tokens per prefix-cache block
  int64_t prefix_cache_blocks = 4096;  // blocks the prefix cache keeps; 0 turns it off
  // Decodes token ids to text: needed by requests with stop strings, and fills GenerationResult::text.
  std::function<std::string(const std::vector<int64_t>&)> detokenize;
};

struct GenerationRequest {
  std::string id;
  std::vector<int64_t> prompt;  // token ids, BOS included when the model wants one
  SamplingOptions sampling;     // with choices, max_new_tokens is the longest choice (+ 1 for a stop id)
  // With LoRA adapters on the model (unmerged): false answers with the base model. Requests of both kinds are
  // decoded in the same steps.
  bool use_adapter = true;
};

struct GenerationResult {
  std::string id;
  std::vector<int64_t> tokens;  // the generated tokens, a stop token included
  std::string text;             // detokenised tokens, cut before a stop string ("" without detokenize)
  std::string finish_reason;    // "stop" (stop id, stop string or a complete choice) | "length"
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // of those, restored from the prefix cache
};

struct EngineStats {
  int64_t finished = 0;
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0;
  int64_t generated_tokens = 0;
  int64_t decode_steps = 0;
};

class GenerationEngine {
 public:
  GenerationEngine(LlamaForCausalLM model, EngineOptions options);
  ~GenerationEngine();

  // Queues a request. InvalidArgument, naming the request, for an empty prompt, a prompt plus max_new_tokens
  // beyond the model's positions, stop strings without a detokenizer, or an empty choice.
  absl::Status Submit(GenerationRequest request);
  // Runs until every queued request has finished, calling on_finish with each result as its sequence ends.
  void Run(const std::function<void(GenerationResult)>& on_finish);

  // log p(continuation[i] | prompt, continuation[:i]) for every continuation token, in fp32 from one forward
  // over what the prefix cache does not already hold of prompt + continuation (a question's prompt is computed
  // once for all its answers). Between runs only. InvalidArgument, as Submit, for empty or too long inputs.
  absl::StatusOr<std::vector<double>> ContinuationLogProbs(const std::vector<int64_t>& prompt,
                                                           const std::vector<int64_t>& continuation);

  const EngineStats& stats() const { return stats_; }

 private:
  struct Sequence;
  void Admit(std::unique_ptr<Sequence> sequence, const std::function<void(GenerationResult)>& on_finish);
  void DecodeStep(const std::function<void(GenerationResult)>& on_finish);
  // Chooses the sequence's next token from its logits [V] (fp32, CPU) and takes it; true when it has finished.
  bool TakeNextToken(Sequence& sequence, at::Tensor logits);
  GenerationResult Finish(Sequence& sequence);
  // The slot cache, (re)made when it is missing or holds fewer than `capacity` positions per slot.
  void EnsureCache(int64_t capacity);

  LlamaForCausalLM model_;
  EngineOptions options_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;  // running_[i] lives in cache slot i
  std::optional<SlotKVCache> cache_;
  PrefixCache prefix_cache_;
  EngineStats stats_;
};

}  // namespace agora
