#include "models/checkpoint.h"

#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <tuple>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "models/hf_state_dict.h"
#include "models/quantized_weight.h"
#include "models/safetensors.h"
#include "models/shard_index.h"
#include "models/tensor_file.h"
#include "util/atomic_file.h"
#include "util/read_file.h"
#include "util/status_macros.h"

namespace agora {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kSingleFile[] = "model.safetensors";

std::string ShapeString(absl::Span<const int64_t> shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

// Where each tensor of a checkpoint lives: the opened files, and name -> (file, header entry).
struct CheckpointFiles {
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::map<std::string, std::pair<const SafetensorsFile*, const TensorInfo*>> tensors;
};

absl::StatusOr<CheckpointFiles> OpenCheckpoint(const fs::path& dir) {
  std::vector<fs::path> paths;
  if (fs::exists(dir / kShardIndexFile)) {
    AGORA_ASSIGN_OR_RETURN(const std::string index_text, ReadFile(dir / kShardIndexFile));
    AGORA_ASSIGN_OR_RETURN(const std::vector<std::string> shards,
                           ParseShardIndex(index_text, (dir / kShardIndexFile).string()));
    for (const std::string& shard : shards) paths.push_back(dir / shard);
  } else if (fs::exists(dir / kSingleFile)) {
    paths.push_back(dir / kSingleFile);
  } else {
    return absl::NotFoundError(absl::StrCat(dir.string(), ": no ", kSingleFile, " or ", kShardIndexFile,
                                            " (only safetensors checkpoints are supported)"));
  }
  CheckpointFiles ckpt;
  for (const fs::path& path : paths) {
    AGORA_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(path));
    for (const TensorInfo& info : file->tensors()) {
      auto [it, inserted] = ckpt.tensors.emplace(info.name, std::make_pair(file.get(), &info));
      if (!inserted)
        return absl::InvalidArgumentError(absl::StrCat("tensor '", info.name, "' appears in both ",
                                                       it->second.first->path().string(), " and ", path.string()));
    }
    ckpt.files.push_back(std::move(file));
  }
  return ckpt;
}

std::string ListNames(const std::vector<std::string>& names) {
  constexpr size_t kShown = 8;
  std::vector<std::string> shown(names.begin(), names.begin() + std::min(names.size(), kShown));
  std::string list = absl::StrJoin(shown, ", ");
  if (names.size() > kShown) absl::StrAppend(&list, ", ... (", names.size(), " in all)");
  return list;
}

}  // namespace

absl::Status LoadWeights(LlamaForCausalLM& model, const fs::path& dir, NonfiniteWeights nonfinite,
                         std::vector<std::string>* nonfinite_found) {
  AGORA_ASSIGN_OR_RETURN(CheckpointFiles ckpt, OpenCheckpoint(dir));
  const LlamaConfig& config = model->config();

  // Validate everything first, so a failed load leaves the model as it was.
  struct Copy {
    at::Tensor destination;      // a parameter, or undefined when the weight is quantised into `quantized_into`
    LinearImpl* quantized_into;  // null for parameters
    const SafetensorsFile* file;
    const TensorInfo* info;
    at::ScalarType dtype;
  };
  std::vector<Copy> copies;
  std::vector<std::string> missing;
  std::set<std::string> used;
  std::vector<std::tuple<std::string, at::Tensor, LinearImpl*>> wanted;  // name, parameter or quantised projection
  for (auto& [name, param] : HfStateDict(model)) wanted.emplace_back(name, param, nullptr);
  for (auto& [name, linear] : QuantizedProjections(model)) wanted.emplace_back(name, at::Tensor(), linear);
  for (const auto& [name, param, linear] : wanted) {
    auto it = ckpt.tensors.find(name);
    if (it == ckpt.tensors.end()) {
      missing.push_back(name);
      continue;
    }
    const auto [file, info] = it->second;
    used.insert(name);
    std::optional<at::ScalarType> dtype = TorchDType(info->dtype);
    if (!dtype)
      return absl::InvalidArgumentError(absl::StrCat(file->path().string(), ": tensor '", name, "' has dtype ",
                                                     std::string(DTypeName(info->dtype)), "; expected F32, F16 or BF16"));
    const std::vector<int64_t> shape =
        linear != nullptr ? std::vector<int64_t>{linear->out_features, linear->in_features} : param.sizes().vec();
    if (info->shape != shape)
      return absl::InvalidArgumentError(absl::StrCat(file->path().string(), ": tensor '", name, "' has shape ",
                                                     ShapeString(info->shape), " but the model (config.json) expects ",
                                                     ShapeString(shape)));
    copies.push_back({param, linear, file, info, *dtype});
  }
  if (!missing.empty())
    return absl::NotFoundError(absl::StrCat(dir.string(), ": checkpoint lacks ", missing.size(),
                                            " tensor(s) the model needs: ", ListNames(missing)));
  std::vector<std::string> unexpected;
  for (const auto& [name, where] : ckpt.tensors) {
    if (!used.count(name) && !IsIgnorableHfTensor(name, config))
      unexpected.push_back(absl::StrCat(name, " (", where.first->path().filename().string(), ")"));
  }
  if (!unexpected.empty())
    return absl::InvalidArgumentError(absl::StrCat(dir.string(), ": checkpoint has ", unexpected.size(),
                                                   " tensor(s) a Llama model with this config.json does not have: ",
                                                   ListNames(unexpected)));

  torch::NoGradGuard no_grad;
  for (const Copy& c : copies) {
    const absl::Span<const std::byte> bytes = c.file->Data(*c.info);
    // Scanned right before its copy, the tensor's pages are read from disk once and found in the page cache by
    // the copy.
    if (const NonfiniteValues bad = CountNonfinite(bytes, c.info->dtype); bad.count > 0) {
      const std::string what = DescribeNonfinite(c.file->path(), c.info->name, bad);
      if (nonfinite == NonfiniteWeights::kRefuse)
        return absl::DataLossError(
            absl::StrCat(what, ": refusing to load it (agora train loads it anyway with model.on_nonfinite_weights=warn)"));
      if (nonfinite_found != nullptr) nonfinite_found->push_back(what);
    }
    const at::Tensor source = TensorOverBytes(bytes, c.info->shape, c.dtype);
    if (c.quantized_into != nullptr) {
      // Quantised on the model's device from the dtype the file stores (as bitsandbytes quantises the weight
      // transformers loaded): the dense tensor lives only for this step, so a 70B base never exists in bf16.
      AGORA_ASSIGN_OR_RETURN(
          c.quantized_into->quantized,
          QuantizedWeight::Quantize(source.to(model->options().device), c.quantized_into->quantization, c.info->name));
      continue;
    }
    // copy_ converts dtype and moves to the parameter's device one tensor at a time: peak extra memory is one
    // tensor, the mapped pages belong to the page cache, not to the process.
    c.destination.copy_(source);
  }
  return absl::OkStatus();
}

absl::StatusOr<LoadedModel> LoadModel(const fs::path& dir, const ModelOptions& options, NonfiniteWeights nonfinite) {
  LoadedModel loaded;
  AGORA_ASSIGN_OR_RETURN(loaded.config, LoadLlamaConfig(dir / "config.json"));
  {
    // Before allocating anything: a config.json that describes far more weights than the files hold (a crafted
    // or mismatched one, hidden_size 10^12) is refused here, not by the allocator or the OOM killer. Up to twice
    // the files' size the model is built and LoadWeights names each missing or misshapen tensor: the most a
    // wrong config can make Agora allocate is twice the checkpoint it came with.
    AGORA_ASSIGN_OR_RETURN(const CheckpointFiles ckpt, OpenCheckpoint(dir));
    double stored = 0;
    for (const auto& [name, where] : ckpt.tensors) {
      double numel = 1;
      for (const int64_t d : where.second->shape) numel *= static_cast<double>(d);
      stored += numel;
    }
    const double described = ParameterCount(loaded.config);
    if (described > 2 * stored)
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s describes %.4g weights (vocab_size %d, hidden_size %d, intermediate_size %d, num_hidden_layers %d), "
          "but the checkpoint's files hold %.4g values: config.json and the weights do not belong together",
          (dir / "config.json").string(), described, loaded.config.vocab_size, loaded.config.hidden_size,
          loaded.config.intermediate_size, loaded.config.num_hidden_layers, stored));
  }
  loaded.model = LlamaForCausalLM(loaded.config, options);
  AGORA_RETURN_IF_ERROR(LoadWeights(loaded.model, dir, nonfinite, &loaded.nonfinite));
  loaded.model->eval();
  return loaded;
}

absl::Status SaveModel(const LlamaForCausalLM& model, const fs::path& dir, const SaveOptions& options) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir.string(), ": cannot create folder (", ec.message(), ")"));

  if (const auto quantized = QuantizedProjections(model); !quantized.empty())
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot save a model whose projections are quantised (", quantized.front().first,
        " ...): the original weights are not kept; save the LoRA adapter, or merge it into the original model "
        "(agora export --merge)"));
  const at::ScalarType dtype = options.dtype.value_or(model->options().dtype);
  AGORA_ASSIGN_OR_RETURN(DType st_dtype, SafetensorsDType(dtype));
  std::vector<std::pair<std::string, at::Tensor>> state = HfStateDict(model);

  // Greedy sharding in module order, as transformers does: start a new shard when the next tensor would
  // overflow the current one.
  std::vector<std::vector<size_t>> shards(1);
  int64_t shard_bytes = 0, total_bytes = 0;
  for (size_t i = 0; i < state.size(); ++i) {
    const int64_t bytes = state[i].second.numel() * static_cast<int64_t>(c10::elementSize(dtype));
    if (!shards.back().empty() && shard_bytes + bytes > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(i);
    shard_bytes += bytes;
    total_bytes += bytes;
  }

  LlamaConfig config = model->config();
  config.torch_dtype = dtype == at::kFloat ? "float32" : dtype == at::kHalf ? "float16" : "bfloat16";
  AGORA_RETURN_IF_ERROR(WriteStringAtomically(dir / "config.json", LlamaConfigToJson(config)));

  json weight_map = json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file_name =
        shards.size() == 1 ? kSingleFile : absl::StrFormat("model-%05d-of-%05d.safetensors", s + 1, shards.size());
    std::vector<at::Tensor> host;  // keeps the CPU copies alive while the shard is written
    std::vector<TensorToWrite> tensors;
    for (size_t i : shards[s]) {
      const auto& [name, param] = state[i];
      host.push_back(param.detach().to(at::kCPU, dtype).contiguous());
      const at::Tensor& t = host.back();
      tensors.push_back({name, st_dtype, t.sizes().vec(),
                         absl::Span<const std::byte>(static_cast<const std::byte*>(t.data_ptr()), t.nbytes())});
      weight_map[name] = file_name;
    }
    AGORA_RETURN_IF_ERROR(WriteSafetensors(dir / file_name, tensors, {{"format", "pt"}}));
  }
  if (shards.size() > 1) {
    json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    AGORA_RETURN_IF_ERROR(WriteStringAtomically(dir / kShardIndexFile, index.dump(2) + "\n"));
    fs::remove(dir / kSingleFile, ec);
  } else {
    fs::remove(dir / kShardIndexFile, ec);
  }
  return absl::OkStatus();
}

absl::Status CopyTokenizerFiles(const fs::path& from, const fs::path& to) {
  for (const char* name : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "generation_config.json"}) {
    if (!fs::exists(from / name)) continue;
    AGORA_ASSIGN_OR_RETURN(std::string bytes, ReadFile(from / name));
    AGORA_RETURN_IF_ERROR(WriteStringAtomically(to / name, bytes));
  }
  return absl::OkStatus();
}

}  // namespace agora
