// What the simulators ask of a model: text in, text out, many requests at once. The engine-backed generator
// batches them (continuous batching, one shared prefix cache across calls, so a long common prompt is computed
// once); tests script the replies instead, to check which agent sees what.
#pragma once

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "models/generation_engine.h"
#include "models/serving_model.h"

namespace agora {

struct TextRequest {
  std::string key;     // unique within a simulation; the request's seed is StableSeed(run seed, key)
  std::string prompt;  // the filled template
  int64_t max_new_tokens = 64;
  double temperature = 0.0;
  double top_p = 1.0;
  uint64_t seed = 0;
  std::vector<std::string> stop_strings;
  std::vector<std::string> choices;  // when given, the reply is exactly one of them (ratings, Yes/No)
  // A bias added to the logit of the first token of each text (SELF-ALIGN gives "Sorry" -100).
  std::vector<std::pair<std::string, double>> first_token_bias;
  bool ban_eos = false;  // the model's stop ids get -100: the reply runs to max_new_tokens or a stop string
};

struct TextReply {
  std::string text;       // cut before a stop string; a choice request's chosen choice
  bool complete = false;  // ended at a stop string, a stop id or a whole choice (not at max_new_tokens)
};

struct GeneratorCounters {
  int64_t requests = 0;
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // restored from the prefix cache instead of computed
  int64_t generated_tokens = 0;
  int64_t truncated_prompts = 0;     // prompts cut on the left to fit the model's positions
};

class TextGenerator {
 public:
  virtual ~TextGenerator() = default;
  // The replies, in the order of `requests`. Each reply depends only on its own request (its seed), never on the
  // others decoded beside it.
  virtual absl::StatusOr<std::vector<TextReply>> Generate(const std::vector<TextRequest>& requests) = 0;
  virtual GeneratorCounters counters() const = 0;
};

// A seed from the run's seed and a request's key (FNV-1a 64 over both): the same on every machine and run.
uint64_t StableSeed(uint64_t seed, absl::string_view key);

// Serves `served` (which must outlive it) through a GenerationEngine. A prompt is rendered as PromptIds renders
// it (a user turn of the chat template, else text after BOS). A prompt too long for the model's positions keeps
// BOS and its last tokens (counted in truncated_prompts); max_new_tokens shrinks to what fits.
class EngineTextGenerator : public TextGenerator {
 public:
  EngineTextGenerator(const ServingModel& served, EngineOptions options);
  absl::StatusOr<std::vector<TextReply>> Generate(const std::vector<TextRequest>& requests) override;
  GeneratorCounters counters() const override;

 private:
  absl::StatusOr<GenerationRequest> Render(const TextRequest& request, int64_t index);

  const ServingModel& served_;
  GenerationEngine engine_;
  int64_t max_positions_;
  GeneratorCounters counters_;
};

}  // namespace agora
