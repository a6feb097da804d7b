// agora export --model BASE --adapter ADAPTER --out DIR [--merge] [--dtype auto|float32|bfloat16|float16]
// Without --merge: DIR becomes a clean PEFT adapter folder (adapter_config.json, adapter_model.safetensors) from a
// LoRA checkpoint or any PEFT adapter folder, validated first; the base model is not loaded.
// With --merge: the base model with every adapter folded into its weights, as an HF model folder (config.json,
// safetensors, tokenizer files) that plain transformers loads; `auto` keeps the base checkpoint's dtype.
#include <cstdio>
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
#include "util/atomic_file.h"
#include "util/read_file.h"
#include "util/status_macros.h"

ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(std::string, adapter);
ABSL_DECLARE_FLAG(std::string, dtype);
ABSL_FLAG(std::string, out, "",
          "export: the folder to write; data sandbox-to-groups: the grouped training file to write; generate "
          "--requests: the results JSONL (appended; a rerun skips the ids it holds)");
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

}  // namespace

int RunExport(const std::vector<char*>& positional_args) {
  const fs::path base = absl::GetFlag(FLAGS_model), adapter = absl::GetFlag(FLAGS_adapter),
                 out = absl::GetFlag(FLAGS_out);
  if (positional_args.size() > 1 || adapter.empty() || out.empty() || (absl::GetFlag(FLAGS_merge) && base.empty())) {
    std::fprintf(stderr, "usage: agora export --adapter DIR --out DIR [--merge --model BASE_DIR [--dtype D]]\n");
    return 2;
  }
  const absl::Status status = absl::GetFlag(FLAGS_merge)
                                  ? ExportMerged(base, adapter, out, absl::GetFlag(FLAGS_dtype))
                                  : ExportAdapter(adapter, out);
  if (!status.ok()) {
    std::fprintf(stderr, "agora export: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  std::printf("%s\n", out.c_str());
  return 0;
}

}  // namespace agora::cli
