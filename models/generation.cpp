#include "models/generation.h"

#include <string>

#include "models/generation_engine.h"

namespace agora {

std::vector<std::vector<int64_t>> Generate(LlamaForCausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                                           const SamplingOptions& options) {
  std::vector<std::vector<int64_t>> generated(prompts.size());
  if (prompts.empty() || options.max_new_tokens <= 0) return generated;
  EngineOptions engine_options;
  engine_options.max_sequences = static_cast<int64_t>(prompts.size());
  GenerationEngine engine(model, engine_options);
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest request{std::to_string(i), prompts[i], options};
    request.sampling.seed = options.seed + 0x9E3779B97F4A7C15ull * i;  // prompt 0 keeps options.seed
    const absl::Status status = engine.Submit(std::move(request));
    TORCH_CHECK(status.ok(), "Generate: ", status.message());
  }
  engine.Run([&generated](GenerationResult result) { generated[std::stoul(result.id)] = std::move(result.tokens); });
  return generated;
}

}  // namespace agora
