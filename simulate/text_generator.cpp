#include "simulate/text_generator.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"

namespace agora {

uint64_t StableSeed(uint64_t seed, absl::string_view key) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64 offset basis
  auto mix = [&h](unsigned char c) { h = (h ^ c) * 1099511628211ull; };
  for (int i = 0; i < 8; ++i) mix(static_cast<unsigned char>(seed >> (8 * i)));
  for (char c : key) mix(static_cast<unsigned char>(c));
  return h;
}

EngineTextGenerator::EngineTextGenerator(const ServingModel& served, EngineOptions options)
    : served_(served),
      engine_(served.model, std::move(options)),
      max_positions_(served.model->config().max_position_embeddings) {}

absl::StatusOr<GenerationRequest> EngineTextGenerator::Render(const TextRequest& request, int64_t index) {
  absl::StatusOr<std::vector<int64_t>> ids = PromptIds(served_, request.prompt, std::nullopt);
  if (!ids.ok()) return absl::InvalidArgumentError(absl::StrCat("request ", request.key, ": ", ids.status().message()));
  SamplingOptions s;
  s.temperature = request.temperature;
  s.top_p = request.top_p;
  s.seed = request.seed;
  s.stop_strings = request.stop_strings;
  for (const std::string& choice : request.choices)
    s.choices.push_back(Widen(served_.tokenizer->Encode(choice, {.add_bos = false})));
  for (const auto& [text, bias] : request.first_token_bias) {
    const std::vector<int32_t> first = served_.tokenizer->Encode(text, {.add_bos = false});
    if (!first.empty()) s.logit_bias.emplace_back(first[0], bias);
  }
  if (request.ban_eos) {
    for (int64_t id : served_.stop_ids) s.logit_bias.emplace_back(id, -100.0);
  } else {
    s.stop_ids = served_.stop_ids;
  }
  int64_t longest_choice = 0;
  for (const std::vector<int64_t>& choice : s.choices)
    longest_choice = std::max<int64_t>(longest_choice, static_cast<int64_t>(choice.size()));
  s.max_new_tokens = s.choices.empty() ? request.max_new_tokens : longest_choice + 1;
  // Keep room for at least a quarter of the positions of new text (all of a choice); cut the prompt on the left.
  const int64_t room = s.choices.empty() ? std::min(s.max_new_tokens, std::max<int64_t>(1, max_positions_ / 4))
                                         : s.max_new_tokens;
  if (static_cast<int64_t>(ids->size()) + room > max_positions_) {
    const bool bos = !ids->empty() && served_.tokenizer->bos_id() && (*ids)[0] == *served_.tokenizer->bos_id();
    const int64_t keep = max_positions_ - room - (bos ? 1 : 0);
    std::vector<int64_t> cut;
    if (bos) cut.push_back((*ids)[0]);
    cut.insert(cut.end(), ids->end() - keep, ids->end());
    *ids = std::move(cut);
    ++counters_.truncated_prompts;
  }
  s.max_new_tokens = std::min<int64_t>(s.max_new_tokens, max_positions_ - static_cast<int64_t>(ids->size()));
  return GenerationRequest{std::to_string(index), *std::move(ids), std::move(s)};
}

absl::StatusOr<std::vector<TextReply>> EngineTextGenerator::Generate(const std::vector<TextRequest>& requests) {
  std::vector<std::vector<std::vector<int64_t>>> choice_ids(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    absl::StatusOr<GenerationRequest> rendered = Render(requests[i], static_cast<int64_t>(i));
    if (!rendered.ok()) return rendered.status();
    choice_ids[i] = rendered->sampling.choices;
    if (absl::Status s = engine_.Submit(*std::move(rendered)); !s.ok())
      return absl::InvalidArgumentError(absl::StrCat("request ", requests[i].key, ": ", s.message()));
  }
  std::vector<TextReply> replies(requests.size());
  const EngineStats before = engine_.stats();
  engine_.Run([&](GenerationResult r) {
    const size_t i = std::stoul(r.id);
    replies[i] = {r.text, r.finish_reason == "stop"};
    // A choice's reply is the choice's own text (detokenising may drop its leading space): the longest choice
    // whose ids begin the output.
    size_t best = 0;
    for (size_t c = 0; c < choice_ids[i].size(); ++c) {
      const std::vector<int64_t>& ids = choice_ids[i][c];
      if (ids.size() > best && ids.size() <= r.tokens.size() && std::equal(ids.begin(), ids.end(), r.tokens.begin())) {
        best = ids.size();
        replies[i].text = requests[i].choices[c];
      }
    }
  });
  const EngineStats& after = engine_.stats();
  counters_.requests += static_cast<int64_t>(requests.size());
  counters_.prompt_tokens += after.prompt_tokens - before.prompt_tokens;
  counters_.cached_prompt_tokens += after.cached_prompt_tokens - before.cached_prompt_tokens;
  counters_.generated_tokens += after.generated_tokens - before.generated_tokens;
  return replies;
}

GeneratorCounters EngineTextGenerator::counters() const { return counters_; }

}  // namespace agora
