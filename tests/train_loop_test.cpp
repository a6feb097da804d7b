// The training loop's behaviour on the embedded tiny model and the demo data (CPU, fp32):
//  - gradient accumulation: 2 micro-batches of 2 rows make the same step as 1 batch of the same 4 rows (loss and
//    gradient norm, which are normalised by the step's total trained tokens, not averaged per micro-batch);
//  - a non-finite loss skips the step (weights and optimizer untouched, counted) or stops the run, as asked;
//  - activation checkpointing gives the gradients of the plain backward;
//  - on a GPU, bf16 training (fp32 master weights) follows the CPU's fp32 run to bf16 accuracy, and a step
//    synchronises with the device a few times, the same number every step.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/util/Exception.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "data/load_tokenizer.h"
#include "models/checkpoint.h"
#include "tests/test_util.h"
#include "trainer/distributed/data_parallel.h"
#include "trainer/objectives/sft.h"
#include "trainer/train_loop.h"

namespace agora {
namespace {

namespace fs = std::filesystem;
using agora::testing::RelativeError;
using ::testing::HasSubstr;

const fs::path kSource = AGORA_SOURCE_DIR;

// Delegates to the SFT objective, but makes the loss of the chosen forward calls (1-based) NaN.
class PoisonedObjective : public Objective {
 public:
  explicit PoisonedObjective(std::set<int> poisoned) : poisoned_(std::move(poisoned)) {}
  std::string name() const override { return "poisoned"; }
  int64_t Denominator(const DeviceBatch& batch) const override { return sft_.Denominator(batch); }
  LossOutput Forward(LlamaForCausalLM& model, const DeviceBatch& batch) override {
    LossOutput out = sft_.Forward(model, batch);
    if (poisoned_.count(++calls_)) out.loss_sum = out.loss_sum * std::numeric_limits<double>::quiet_NaN();
    return out;
  }

 private:
  SftObjective sft_{HeadLoss::kTorch};
  std::set<int> poisoned_;
  int calls_ = 0;
};

// Everything a loop needs, built over a fresh run folder.
struct TrainingRun {
  TrainingRun(const std::string& name, int64_t batch_rows, ModelOptions model_options = {at::kFloat, at::kCPU})
      : device(model_options.device) {
    const char* scratch = std::getenv("AGORA_SCRATCH");
    dir = fs::path(scratch != nullptr ? scratch : fs::temp_directory_path().string()) / ("train_loop_" + name);
    fs::remove_all(dir);
    fs::create_directories(dir / "checkpoints");
    const fs::path model_dir = kSource / "assets/tiny-llama";
    auto tokenizer = LoadTokenizer(model_dir);
    EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
    TrainingDataOptions o;
    o.path = kSource / "assets/data/sandbox_demo/train.jsonl";
    o.format = RecordFormat::kMessages;
    o.max_seq_len = 128;
    o.batch_rows = batch_rows;
    o.seed = 11;
    auto loader = TrainingDataLoader::Open(o, std::shared_ptr<const Tokenizer>(std::move(*tokenizer)));
    EXPECT_TRUE(loader.ok()) << loader.status();
    data = std::move(*loader);
    auto loaded = LoadModel(model_dir, model_options);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    model = loaded->model;
    std::vector<TrainableParameter> params;
    for (const auto& item : model->named_parameters())
      params.push_back({item.key(), item.value().requires_grad_(true), item.key().find("norm") == std::string::npos});
    optimizer = std::make_unique<AdamW>(std::move(params), AdamWOptions{0.9, 0.999, 1e-8, 0.01});
    checkpoints = std::make_unique<CheckpointManager>(dir / "checkpoints", 1, model_dir);
    log = *RunLog::Open(dir / "log.txt", /*terminal=*/false);
    metrics = *MetricsLog::Open(dir / "metrics.jsonl", 0);
  }

  absl::StatusOr<LoopEnd> Train(Objective& objective, LoopOptions options) {
    options.schedule.lr = 1e-3;
    options.schedule.total_steps = options.total_steps;
    options.device = device;
    DataParallel alone(*log);
    LoopParts parts{model, &objective, optimizer.get(), data.get(), nullptr, checkpoints.get(), log.get(),
                    metrics.get(), nullptr, &alone};
    return RunTrainLoop(options, parts, state);
  }

  std::vector<nlohmann::json> TrainRecords() const {
    std::vector<nlohmann::json> out;
    std::ifstream in(dir / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      nlohmann::json j = nlohmann::json::parse(line);
      if (j["kind"] == "train") out.push_back(j);
    }
    return out;
  }

  std::string LogText() const {
    std::ifstream in(dir / "log.txt");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  at::Device device;
  fs::path dir;
  std::unique_ptr<TrainingDataLoader> data;
  LlamaForCausalLM model{nullptr};
  std::unique_ptr<AdamW> optimizer;
  std::unique_ptr<CheckpointManager> checkpoints;
  std::unique_ptr<RunLog> log;
  std::unique_ptr<MetricsLog> metrics;
  TrainerState state;
};

TEST(TrainLoop, GradientAccumulationMakesTheSameStepAsOneLargeBatch) {
  SftObjective sft(HeadLoss::kTorch);
  TrainingRun large("large", /*batch_rows=*/4), accumulated("accumulated", /*batch_rows=*/2);
  LoopOptions options;
  options.total_steps = 2;
  ASSERT_TRUE(large.Train(sft, options).ok());
  options.gradient_accumulation_steps = 2;
  ASSERT_TRUE(accumulated.Train(sft, options).ok());
  const auto a = large.TrainRecords(), b = accumulated.TrainRecords();
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const double la = a[i]["loss"], lb = b[i]["loss"], ga = a[i]["grad_norm"], gb = b[i]["grad_norm"];
    EXPECT_NEAR(la, lb, 1e-5 * la) << "step " << i + 1;
    EXPECT_NEAR(ga, gb, 1e-5 * ga) << "step " << i + 1;
    EXPECT_EQ(a[i]["trained_tokens"], b[i]["trained_tokens"]);
  }
  // Both read rows 0..7 of epoch 0: 2 batches of 4, or 4 of 2.
  EXPECT_EQ(large.state.data.batch, 2);
  EXPECT_EQ(accumulated.state.data.batch, 4);
}

TEST(TrainLoop, NonFiniteLossSkipsTheStepAndLeavesTheWeights) {
  TrainingRun run("skip", 2);
  // Snapshot after step 1 by running 1 step, then step 2 (poisoned) must change nothing.
  PoisonedObjective objective({2});
  LoopOptions options;
  options.total_steps = 1;
  ASSERT_TRUE(run.Train(objective, options).ok());
  std::vector<at::Tensor> after_step1;
  for (const auto& p : run.model->parameters()) after_step1.push_back(p.detach().clone());
  options.total_steps = 2;
  auto end = run.Train(objective, options);
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(run.state.step, 2);
  EXPECT_EQ(run.state.skipped_steps, 1);
  EXPECT_EQ(run.optimizer->steps(), 1) << "the skipped step must not advance AdamW's step count";
  const auto params = run.model->parameters();
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(at::equal(params[i], after_step1[i])) << i;
  const auto records = run.TrainRecords();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1]["skipped"], 1.0);
  EXPECT_THAT(run.LogText(), HasSubstr("step 2: non-finite loss"));
  EXPECT_THAT(run.LogText(), HasSubstr("step skipped, weights unchanged"));
  // Training goes on after a skipped step.
  options.total_steps = 3;
  ASSERT_TRUE(run.Train(objective, options).ok());
  EXPECT_EQ(run.optimizer->steps(), 2);
}

TEST(TrainLoop, NonFiniteLossStopsTheRunWhenAskedTo) {
  TrainingRun run("stop", 2);
  PoisonedObjective objective({3});
  LoopOptions options;
  options.total_steps = 5;
  options.gradient_accumulation_steps = 2;  // forward call 3 is the first micro-batch of step 2
  options.on_nonfinite = NonFinitePolicy::kStop;
  auto end = run.Train(objective, options);
  ASSERT_FALSE(end.ok());
  EXPECT_EQ(end.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(end.status().message()), HasSubstr("step 2: non-finite loss"));
  EXPECT_THAT(std::string(end.status().message()), HasSubstr("training.on_nonfinite=stop"));
  EXPECT_EQ(run.state.step, 1);
}

TEST(TrainLoop, ActivationCheckpointingGivesThePlainGradients) {
  // Checkpointing is fixed when a model is built: two runs over the same weights and data.
  ModelOptions checkpointing{at::kFloat, at::kCPU};
  checkpointing.activation_checkpointing = true;
  TrainingRun run("checkpointing_off", 2), checkpointed("checkpointing_on", 2, checkpointing);
  auto batch = run.data->Get({0, 0});
  ASSERT_TRUE(batch.ok());
  const DeviceBatch device_batch = ToDevice(*batch, at::kCPU);
  auto gradients = [&](TrainingRun& r) {
    PackedTokenNll(r.model, device_batch, HeadLoss::kTorch).sum().backward();
    std::vector<at::Tensor> grads;
    for (const auto& p : r.model->parameters()) grads.push_back(p.grad().clone());
    return grads;
  };
  const std::vector<at::Tensor> plain = gradients(run), recomputed = gradients(checkpointed);
  ASSERT_EQ(plain.size(), recomputed.size());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_LE(RelativeError(recomputed[i], plain[i]), 1e-6) << i;
}

TEST(TrainLoop, Bf16OnCudaFollowsFp32OnTheCpu) {
  AGORA_SKIP_WITHOUT_CUDA();
  SftObjective sft(HeadLoss::kTorch);
  TrainingRun cpu("cpu_fp32", 2), gpu("cuda_bf16", 2, ModelOptions{at::kBFloat16, at::Device(at::kCUDA, 0)});
  LoopOptions options;
  options.total_steps = 4;
  ASSERT_TRUE(cpu.Train(sft, options).ok());
  ASSERT_TRUE(gpu.Train(sft, options).ok());
  const auto a = cpu.TrainRecords(), b = gpu.TrainRecords();
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(b.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const double la = a[i]["loss"], lb = b[i]["loss"];
    EXPECT_NEAR(lb, la, 1e-2 * la) << "step " << i + 1;
  }
}

// Counts the warnings torch's CUDA sync debug mode raises: one per operation that makes the host wait for the GPU
// (a .item(), a copy to the host, a copy from pageable host memory).
class SyncCounter : public c10::WarningHandler {
 public:
  void process(const c10::Warning& warning) override {
    if (warning.msg().find("synchroniz") != std::string::npos) ++count;  // "called a synchronizing CUDA operation"
  }
  int64_t count = 0;
};

// A host sync hidden in a per-micro-batch, per-tensor or per-layer interface costs a GPU stall each time and no CPU
// test shows it. Two runs that differ only in their number of steps differ by a whole number of identical steps:
// their difference is the syncs of one step, which must stay small (the batch's uploads, the step's one copy of
// its values, the gradient norm, the loss's target check), whatever the model's number of tensors.
TEST(TrainLoop, CudaStepsSyncAFewTimesEach) {
  AGORA_SKIP_WITHOUT_CUDA();
  SftObjective sft(HeadLoss::kTorch);
  auto syncs = [&](int64_t steps) {
    TrainingRun run("cuda_syncs_" + std::to_string(steps), 2, ModelOptions{at::kBFloat16, at::Device(at::kCUDA, 0)});
    LoopOptions options;
    options.total_steps = steps;
    SyncCounter counter;
    const c10::WarningUtils::WarningHandlerGuard guard(&counter);
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_WARN);
    const bool ok = run.Train(sft, options).ok();
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
    EXPECT_TRUE(ok);
    return counter.count;
  };
  const int64_t two = syncs(2), four = syncs(4), six = syncs(6);
  EXPECT_EQ(six - four, four - two) << "steps synchronise a different number of times";
  const int64_t per_step = (four - two) / 2;
  EXPECT_GT(per_step, 0);
  EXPECT_LE(per_step, 16) << "a step synchronises " << per_step << " times";
}

}  // namespace
}  // namespace agora
