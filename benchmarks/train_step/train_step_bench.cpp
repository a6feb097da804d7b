// Agora's side of benchmarks/train_step: whole training steps (forward, backward, AdamW update) of a Hugging Face
// model folder on one packed batch, timed step by step. The driver (train_step_bench.py) runs it beside HF
// transformers + PEFT on the same folder and batch and compares; run alone it is a smoke test.
//
// Usage: train_step_bench --model DIR --batch BATCH.json --out OUT.json [--device cpu|cuda] [--mode lora|full]
//          [--steps 10] [--warmup 2] [--lr 1e-3] [--lora-rank 16] [--lora-alpha 32]
//          [--lora-targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj] [--attention sdpa|agora]
//          [--loss torch|fused]
// BATCH.json: {"rows": R, "seq_len": S, "input_ids": [R*S], "labels": [R*S], "position_ids": [R*S],
//              "cu_seqlens": [n+1]}, the rows flattened, labels in HF's convention (-100 = untrained).
// OUT.json: per step its time (ms, CUDA events on CUDA) and loss; the peak memory (CUDA: the caching allocator's
// peak; CPU: the process's peak resident set); parameter counts.
// Precision: bf16 weights with fp32 LoRA adapters (fp32 master weights and moments for full training) on CUDA,
// fp32 on the CPU, as `agora train` runs.
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/autograd.h>

#include "benchmarks/stopwatch.h"
#include "models/checkpoint.h"
#include "models/lora.h"
#include "trainer/adamw.h"
#include "trainer/objective.h"
#include "trainer/objectives/sft.h"

namespace {

using agora::bench::Stopwatch;
using nlohmann::json;

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "train_step_bench: %s\n", message.c_str());
  std::exit(2);
}

// --name value pairs; every value is a string until used.
std::map<std::string, std::string> ParseArgs(int argc, char** argv) {
  std::map<std::string, std::string> args = {
      {"device", "cpu"}, {"mode", "lora"},        {"steps", "10"},        {"warmup", "2"},
      {"lr", "1e-3"},    {"lora-rank", "16"},     {"lora-alpha", "32"},   {"attention", "sdpa"},
      {"loss", "torch"}, {"lora-targets", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"}};
  for (int i = 1; i < argc; i += 2) {
    const std::string name = argv[i];
    if (name.rfind("--", 0) != 0 || i + 1 >= argc) Fail("expected --name value pairs, got '" + name + "'");
    args[name.substr(2)] = argv[i + 1];
  }
  for (const char* required : {"model", "batch", "out"})
    if (!args.count(required)) Fail(std::string("--") + required + " is required");
  return args;
}

std::vector<int64_t> Ints(const json& batch, const char* key, size_t expected, const std::string& path) {
  if (!batch.contains(key) || !batch[key].is_array()) Fail(path + ": no array '" + key + "'");
  std::vector<int64_t> values = batch[key].get<std::vector<int64_t>>();
  if (expected != 0 && values.size() != expected)
    Fail(path + ": '" + key + "' has " + std::to_string(values.size()) + " values, expected " +
         std::to_string(expected));
  return values;
}

// The batch file as the trainer's PackedBatch: one flattened stream of R rows, one sequence per sample.
agora::PackedBatch ReadBatch(const std::string& path) {
  std::ifstream in(path);
  if (!in) Fail(path + ": cannot open");
  const json batch = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (batch.is_discarded()) Fail(path + ": not valid JSON");
  agora::PackedBatch b;
  b.rows = batch.value("rows", int64_t{0});
  b.seq_len = batch.value("seq_len", int64_t{0});
  const size_t tokens = static_cast<size_t>(b.rows * b.seq_len);
  if (tokens == 0) Fail(path + ": rows and seq_len must be positive");
  b.input_ids = Ints(batch, "input_ids", tokens, path);
  b.labels = Ints(batch, "labels", tokens, path);
  b.position_ids = Ints(batch, "position_ids", tokens, path);
  b.cu_seqlens = Ints(batch, "cu_seqlens", 0, path);
  if (b.cu_seqlens.size() < 2 || b.cu_seqlens.front() != 0 || b.cu_seqlens.back() != static_cast<int64_t>(tokens))
    Fail(path + ": cu_seqlens must run from 0 to rows * seq_len");
  b.num_samples = static_cast<int64_t>(b.cu_seqlens.size()) - 1;
  b.num_groups = b.num_samples;
  for (int64_t s = 0; s < b.num_samples; ++s) {
    for (int64_t t = b.cu_seqlens[s]; t < b.cu_seqlens[s + 1]; ++t) {
      b.sample_index.push_back(static_cast<int32_t>(s));
      b.sequence_id.push_back(static_cast<int32_t>(s));
    }
    b.sequence_group.push_back(static_cast<int32_t>(s));
    b.sequence_score.push_back(0.f);
  }
  for (int64_t label : b.labels) b.trained_tokens += label != agora::kIgnoreLabel;
  return b;
}

double PeakMemoryMiB(const at::Device& device) {
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device());
    const auto aggregate = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    return static_cast<double>(stats.allocated_bytes[aggregate].peak) / (1024.0 * 1024.0);
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

}  // namespace

int main(int argc, char** argv) {
  const std::map<std::string, std::string> args = ParseArgs(argc, argv);
  const at::Device device(args.at("device"));
  const bool cuda = device.is_cuda();
  if (cuda && !at::cuda::is_available()) Fail("--device cuda but no CUDA device is visible");
  const bool lora = args.at("mode") == "lora";
  if (!lora && args.at("mode") != "full") Fail("--mode must be lora or full");
  const int steps = std::atoi(args.at("steps").c_str()), warmup = std::atoi(args.at("warmup").c_str());
  const double lr = std::atof(args.at("lr").c_str());

  agora::ModelOptions options{cuda ? at::kBFloat16 : at::kFloat, device};
  options.attention = args.at("attention") == "agora" ? agora::AttentionBackend::kAgora : agora::AttentionBackend::kSdpa;
  absl::StatusOr<agora::LoadedModel> loaded = agora::LoadModel(args.at("model"), options);
  if (!loaded.ok()) Fail(std::string(loaded.status().message()));
  agora::LlamaForCausalLM model = loaded->model;
  if (lora) {
    agora::LoraConfig config;
    config.rank = std::atoi(args.at("lora-rank").c_str());
    config.alpha = std::atof(args.at("lora-alpha").c_str());
    absl::StatusOr<std::vector<std::string>> targets = agora::ParseLoraTargets(args.at("lora-targets"));
    if (!targets.ok()) Fail(std::string(targets.status().message()));
    config.targets = *targets;
    const absl::Status added = agora::AddLora(model, config, at::make_generator<at::CPUGeneratorImpl>(0));
    if (!added.ok()) Fail(std::string(added.message()));
  }
  std::vector<agora::TrainableParameter> trainable;
  int64_t parameters = 0, trained = 0;
  for (const auto& item : model->named_parameters()) {
    parameters += item.value().numel();
    if (lora && !agora::IsLoraParameterName(item.key())) continue;
    item.value().set_requires_grad(true);
    trainable.push_back({item.key(), item.value(), /*decay=*/false});
    trained += item.value().numel();
  }
  agora::AdamW optimizer(std::move(trainable), agora::AdamWOptions{});  // torch.optim.AdamW's defaults, no decay

  const agora::DeviceBatch batch = agora::ToDevice(ReadBatch(args.at("batch")), device);
  agora::SftObjective objective(args.at("loss") == "fused" ? agora::HeadLoss::kFused : agora::HeadLoss::kTorch);
  const double denominator = static_cast<double>(objective.Denominator(batch));
  Stopwatch stopwatch(cuda);
  json step_ms = json::array(), losses = json::array();
  for (int step = 0; step < warmup + steps; ++step) {
    if (cuda && step == warmup) c10::cuda::CUDACachingAllocator::resetPeakStats(c10::cuda::current_device());
    double loss = 0;
    const double ms = stopwatch.Milliseconds([&] {
      agora::LossOutput out = objective.Forward(model, batch);
      at::Tensor mean = out.loss_sum / denominator;
      mean.backward();
      optimizer.AccumulateGradients();
      optimizer.Step(lr);
      loss = out.token_nll_sum.item<double>() / denominator;  // one sync a step, as HF's loss.item()
    });
    if (step >= warmup) step_ms.push_back(ms);
    losses.push_back(loss);  // every step's, warm-up included: the curve starts from the untrained model
    std::printf("step %d  %.1f ms  loss %.4f\n", step, ms, loss);
  }
  const json result = {{"framework", "agora"},
                       {"mode", lora ? "lora" : "full"},
                       {"device", args.at("device")},
                       {"dtype", cuda ? "bfloat16" : "float32"},
                       {"attention", args.at("attention")},
                       {"loss_impl", args.at("loss")},
                       {"parameters", parameters},
                       {"trained_parameters", trained},
                       {"tokens", batch.tokens},
                       {"trained_tokens", batch.trained_tokens},
                       {"warmup_steps", warmup},
                       {"step_ms", step_ms},
                       {"loss", losses},
                       {"peak_memory_mib", PeakMemoryMiB(device)}};
  std::ofstream(args.at("out")) << result.dump(2) << "\n";
  return 0;
}
