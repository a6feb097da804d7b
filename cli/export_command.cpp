// agora export --model BASE --adapter ADAPTER --out DIR [--merge] [--dtype auto|float32|bfloat16|float16]
// Without --merge: DIR becomes a clean PEFT adapter folder (adapter_config.json, adapter_model.safetensors) from a
// LoRA checkpoint or any PEFT adapter folder, validated first; the base model is not loaded.
// With --merge: the base model with every adapter folded into its weights, as an HF model folder (config.json,
// safetensors, tokenizer files) that plain transformers loads; `auto` keeps the base checkpoint's dtype.
// agora export --checkpoint STEP_DIR --model BASE --out DIR: a training checkpoint sharded at level parameters
// (its weights are only in its rank files, trainer/distributed/sharded_checkpoint.h) as an HF model folder:
// BASE (the run's model.path) with every trained tensor replaced by the one the shards hold.
#include <cstdio>

#include <ATen/core/grad_mode.h>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "models/checkpoint.h"
#include "models/config.h"
#include "models/device_options.h"
#include "models/lora.h"
#include "trainer/distributed/sharded_checkpoint.h"
#include "util/atomic_file.h"
#include "util/read_file.h"
#include "util/status_macros.h"

ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(std::string, adapter);
ABSL_DECLARE_FLAG(std::string, dtype);
ABSL_FLAG(std::string, out, "",
          "export: the folder to write; data sandbox-to-groups: the grouped training file to write; generate "
          "--requests: the results JSONL (appended; a rerun skips the ids it holds)");
ABSL_FLAG(std::string, checkpoint, "",
          "export: a sharded training checkpoint (sharding.json) to write as a model folder; --model is the run's "
          "model.path");
ABSL_FLAG(bool, merge, false, "export: fold the adapter into the base weights and write a full HF model folder");

namespace agora::cli {
namespace {

namespace fs = std::filesystem;

absl::Status ExportAdapter(const fs::path& adapter, const fs::path& out) {
  AGORA_RETURN_IF_ERROR(ReadPeftAdapterConfig(adapter).status());
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return absl::InternalError(absl::StrCat(out.string(), ": cannot create folder (", ec.message(), ")"));
  for (const char* name : {"adapter_config.json", "adapter_model.safetensors"}) {
    AGORA_ASSIGN_OR_RETURN(std::string bytes, ReadFile(adapter / name));
    AGORA_RETURN_IF_ERROR(WriteStringAtomically(out / name, bytes));
  }
  return absl::OkStatus();
}

absl::Status ExportMerged(const fs::path& base, const fs::path& adapter, const fs::path& out, std::string dtype) {
  if (dtype == "auto") {
    AGORA_ASSIGN_OR_RETURN(LlamaConfig config, LoadLlamaConfig(base / "config.json"));
    dtype = config.torch_dtype.empty() ? "float32" : config.torch_dtype;
  }
  AGORA_ASSIGN_OR_RETURN(ModelOptions options, ResolveModelOptions("cpu", dtype));
  AGORA_ASSIGN_OR_RETURN(LoadedModel loaded, LoadModel(base, options));
  AGORA_RETURN_IF_ERROR(LoadPeftAdapter(loaded.model, adapter).status());
  MergeLora(loaded.model);
  AGORA_RETURN_IF_ERROR(SaveModel(loaded.model, out));
  return CopyTokenizerFiles(base, out);
}

absl::Status ExportSharded(const fs::path& base, const fs::path& checkpoint, const fs::path& out, std::string dtype) {
  if (!fs::exists(checkpoint / kShardingFile))
    return absl::InvalidArgumentError(absl::StrCat(checkpoint.string(), ": not a sharded checkpoint (no ",
                                                   kShardingFile, ")"));
  if (dtype == "auto") {  // the base's dtype, as a merge writes it; training on the CPU kept float32
    AGORA_ASSIGN_OR_RETURN(LlamaConfig config, LoadLlamaConfig(base / "config.json"));
    dtype = config.torch_dtype.empty() ? "float32" : config.torch_dtype;
  }
  AGORA_ASSIGN_OR_RETURN(ModelOptions options, ResolveModelOptions("cpu", dtype));
  AGORA_ASSIGN_OR_RETURN(LoadedModel loaded, LoadModel(base, options));
  AGORA_ASSIGN_OR_RETURN(std::unique_ptr<SavedTrainingState> saved, SavedTrainingState::Open(checkpoint));
  at::NoGradGuard no_grad;
  for (const auto& item : loaded.model->named_parameters()) {
    absl::StatusOr<at::Tensor> trained = saved->Get(item.key(), "param");
    if (absl::IsNotFound(trained.status())) continue;  // frozen: the base's
    AGORA_RETURN_IF_ERROR(trained.status());
    if (!trained->sizes().equals(item.value().sizes()))
      return absl::InvalidArgumentError(absl::StrCat(checkpoint.string(), ": ", item.key(), " has shape ",
                                                     c10::str(trained->sizes()), ", the model's is ",
                                                     c10::str(item.value().sizes())));
    item.value().copy_(*trained);
  }
  AGORA_RETURN_IF_ERROR(SaveModel(loaded.model, out));
  return CopyTokenizerFiles(base, out);
}

}  // namespace

int RunExport(const std::vector<char*>& positional_args) {
  const fs::path base = absl::GetFlag(FLAGS_model), adapter = absl::GetFlag(FLAGS_adapter),
                 out = absl::GetFlag(FLAGS_out);
  const fs::path checkpoint = absl::GetFlag(FLAGS_checkpoint);
  const bool sharded = !checkpoint.empty() && adapter.empty() && !base.empty();
  if (positional_args.size() > 1 || (adapter.empty() && !sharded) || out.empty() ||
      (absl::GetFlag(FLAGS_merge) && base.empty())) {
    std::fprintf(stderr,
                 "usage: agora export --adapter DIR --out DIR [--merge --model BASE_DIR [--dtype D]]\n"
                 "       agora export --checkpoint SHARDED_STEP_DIR --model BASE_DIR --out DIR [--dtype D]\n");
    return 2;
  }
  const absl::Status status = sharded                    ? ExportSharded(base, checkpoint, out, absl::GetFlag(FLAGS_dtype))
                              : absl::GetFlag(FLAGS_merge) ? ExportMerged(base, adapter, out, absl::GetFlag(FLAGS_dtype))
                                                           : ExportAdapter(adapter, out);
  if (!status.ok()) {
    std::fprintf(stderr, "agora export: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  std::printf("%s\n", out.c_str());
  return 0;
}

}  // namespace agora::cli
