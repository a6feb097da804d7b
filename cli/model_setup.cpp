#include "cli/model_setup.h"

#include <optional>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, model, "", "Hugging Face model folder (config.json, *.safetensors, tokenizer.model)");
ABSL_FLAG(std::string, adapter, "", "a PEFT LoRA adapter folder (or an Agora LoRA checkpoint) to apply to --model");
ABSL_FLAG(std::string, chat_template, "",
          "wrap each prompt as a user turn of this chat template (llama2, llama3, plain or vicuna), as training "
          "renders it; empty: the prompt is plain text after BOS. Request lines with messages need one");
ABSL_FLAG(int64_t, max_sequences, 32, "sequences decoded together (the engine's cache slots)");
ABSL_FLAG(int64_t, prefix_cache_blocks, 4096, "16-token prompt blocks the prefix cache keeps (0: off)");
ABSL_FLAG(std::string, device, "auto", "auto, cpu or cuda[:N]");
ABSL_FLAG(std::string, dtype, "auto", "auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16 or float16");
ABSL_FLAG(std::string, quantize_base, "none",
          "store the model's projections quantised: none, nf4 (QLoRA's 4-bit NormalFloat, 0.52 bytes a parameter) "
          "or int8 (row-wise); embeddings, norms and lm_head stay in --dtype");

namespace agora::cli {

absl::StatusOr<Setup> Load() {
  const std::string model_dir = absl::GetFlag(FLAGS_model);
  if (model_dir.empty()) return absl::InvalidArgumentError("--model DIR is required");
  const std::string quantize = absl::GetFlag(FLAGS_quantize_base);
  std::optional<BaseQuantization> kind;
  for (BaseQuantization k : {BaseQuantization::kNone, BaseQuantization::kNf4, BaseQuantization::kInt8})
    if (quantize == BaseQuantizationName(k)) kind = k;
  if (!kind)
    return absl::InvalidArgumentError(absl::StrCat("--quantize_base: expected none, nf4 or int8, got '", quantize, "'"));
  return LoadServingModel({.model_dir = model_dir,
                           .adapter_dir = absl::GetFlag(FLAGS_adapter),
                           .chat_template = absl::GetFlag(FLAGS_chat_template),
                           .device = absl::GetFlag(FLAGS_device),
                           .dtype = absl::GetFlag(FLAGS_dtype),
                           .quantize_base = *kind});
}

EngineOptions MakeEngineOptions(const Setup& setup) {
  EngineOptions o;
  o.max_sequences = absl::GetFlag(FLAGS_max_sequences);
  o.prefix_cache_blocks = absl::GetFlag(FLAGS_prefix_cache_blocks);
  o.detokenize = Detokenizer(setup);
  return o;
}

}  // namespace agora::cli
