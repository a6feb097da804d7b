// The trainer's numerical parts against independent references:
//  - packing isolation: a packed batch gives every sample the per-token losses it gets alone, computed by a plain
//    causal forward and a float64 log-softmax (no packing code involved); changing one sample's tokens leaves
//    its neighbours' losses bit-identical;
//  - AdamW against torch.optim.AdamW (the oracle's recorded trajectory), fp32 and bf16-with-fp32-master, the
//    gradient norm against torch.nn.utils.get_total_norm, and a state round trip that continues identically;
//  - the learning-rate schedule against its closed form; RNG states captured and restored.
#include <cmath>
#include <filesystem>
#include <map>
#include <numbers>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "data/packing.h"
#include "models/checkpoint.h"
#include "tests/test_util.h"
#include "trainer/adamw.h"
#include "trainer/lr_schedule.h"
#include "trainer/objectives/sft.h"
#include "trainer/rng_state.h"

namespace agora {
namespace {

namespace fs = std::filesystem;
using agora::testing::FixtureDir;
using agora::testing::ReadTensors;
using agora::testing::RelativeError;

// --- packing isolation ---------------------------------------------------------------------------------------

LlamaForCausalLM TinyModel() {
  auto loaded = LoadModel(fs::path(AGORA_SOURCE_DIR) / "assets/tiny-llama", ModelOptions{at::kFloat, at::kCPU});
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  return loaded->model;
}

// A random sample: random ids; labels trained on a random half of the positions.
TokenizedSample RandomSample(int64_t length, int64_t vocab, at::Generator& gen) {
  at::Tensor ids = at::randint(3, vocab, {length}, gen, at::kLong);
  at::Tensor trained = at::rand({length}, gen) < 0.5;
  TokenizedSample s;
  for (int64_t t = 0; t < length; ++t) {
    s.ids.push_back(static_cast<int32_t>(ids[t].item<int64_t>()));
    s.labels.push_back(trained[t].item<bool>() ? s.ids.back() : kIgnoreLabel);
  }
  return s;
}

// The reference: the sample alone through the plain causal forward, NLL in float64.
at::Tensor ReferenceNll(LlamaForCausalLM& model, const TokenizedSample& s) {
  const int64_t n = static_cast<int64_t>(s.ids.size());
  at::Tensor ids = at::tensor(std::vector<int64_t>(s.ids.begin(), s.ids.end()), at::kLong).view({1, n});
  at::Tensor logits = model->Logits(model->forward(ids, DefaultPositions(1, n, at::kCPU), AttentionMask{}));
  at::Tensor logp = logits.to(at::kDouble).log_softmax(-1)[0];
  at::Tensor nll = at::zeros({n}, at::kDouble);
  for (int64_t t = 1; t < n; ++t)
    if (s.labels[t] != kIgnoreLabel) nll[t] = -logp[t - 1][s.labels[t]];
  return nll;
}

TEST(PackingIsolation, PackedSamplesLoseExactlyWhatTheyLoseAlone) {
  at::NoGradGuard no_grad;
  LlamaForCausalLM model = TinyModel();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const int64_t vocab = model->config().vocab_size;
  std::vector<TokenizedSample> samples;
  for (int64_t length : {9, 17, 5, 12, 20}) samples.push_back(RandomSample(length, vocab, gen));
  // Two rows of 32: samples 0-2 (31 tokens, 1 padding) and 3-4 (32 tokens).
  const PackedBatch packed = AssembleBatch(
      {{{&samples[0], 0}, {&samples[1], 1}, {&samples[2], 2}}, {{&samples[3], 3}, {&samples[4], 4}}}, 32, 0);
  const at::Tensor nll = PackedTokenNll(model, ToDevice(packed, at::kCPU)).to(at::kDouble);
  ASSERT_EQ(nll.size(0), 64);
  for (size_t s = 0; s < samples.size(); ++s) {
    const int64_t start = packed.cu_seqlens[s < 3 ? s : s + 1];  // row 0 ends with a padding segment
    const int64_t n = static_cast<int64_t>(samples[s].ids.size());
    const at::Tensor expected = ReferenceNll(model, samples[s]);
    const at::Tensor got = nll.slice(0, start, start + n);
    EXPECT_LE(RelativeError(got, expected), 1e-5) << "sample " << s;
    EXPECT_EQ(got[0].item<double>(), 0.0) << "the first token of a sample is never trained";
  }
  EXPECT_EQ(nll.slice(0, 31, 32).abs().sum().item<double>(), 0.0) << "padding carries no loss";

  // Changing sample 1 changes nothing for samples 0 and 2, bit for bit.
  TokenizedSample other = RandomSample(17, vocab, gen);
  const PackedBatch changed = AssembleBatch(
      {{{&samples[0], 0}, {&other, 1}, {&samples[2], 2}}, {{&samples[3], 3}, {&samples[4], 4}}}, 32, 0);
  const at::Tensor nll2 = PackedTokenNll(model, ToDevice(changed, at::kCPU)).to(at::kDouble);
  EXPECT_TRUE(at::equal(nll.slice(0, 0, 9), nll2.slice(0, 0, 9)));
  EXPECT_TRUE(at::equal(nll.slice(0, 26, 64), nll2.slice(0, 26, 64)));
  EXPECT_FALSE(at::equal(nll.slice(0, 9, 26), nll2.slice(0, 9, 26)));
}

// --- AdamW against torch.optim.AdamW -------------------------------------------------------------------------

constexpr double kBeta1 = 0.9, kBeta2 = 0.95, kEps = 1e-8, kWeightDecay = 0.1;  // as the oracle
const std::vector<std::string> kNames = {"model.layers.0.mlp.up_proj.weight", "model.norm.weight", "lm_head.weight"};

class AdamWTest : public ::testing::Test {
 protected:
  void SetUp() override { ref_ = ReadTensors(FixtureDir("AGORA_OPTIMIZER_FIXTURES") / "adamw.safetensors"); }

  // Parameters at their initial values in `dtype`; the norm is not decayed, as the recipe decides.
  std::vector<TrainableParameter> Parameters(at::ScalarType dtype) const {
    std::vector<TrainableParameter> out;
    for (const std::string& name : kNames)
      out.push_back({name, ref_.at(name).to(dtype).requires_grad_(true), name != "model.norm.weight"});
    return out;
  }

  // Gives every parameter its gradient of update k, as backward would (in the parameter's dtype).
  void SetGradients(AdamW& adam, int k) const {
    for (const TrainableParameter& p : adam.parameters())
      p.param.mutable_grad() = ref_.at("grad." + std::to_string(k) + "." + p.name).to(p.param.scalar_type());
  }

  double Lr(int k) const { return ref_.at("lr")[k].item<double>(); }

  std::map<std::string, at::Tensor> ref_;
};

TEST_F(AdamWTest, Fp32FollowsTorchAdamWStepByStep) {
  AdamW adam(Parameters(at::kFloat), AdamWOptions{kBeta1, kBeta2, kEps, kWeightDecay});
  for (int k = 0; k < 5; ++k) {
    SetGradients(adam, k);
    adam.AccumulateGradients();
    EXPECT_NEAR(adam.GradientNorm(), ref_.at("grad_norm")[k].item<double>(),
                1e-5 * ref_.at("grad_norm")[k].item<double>());
    adam.Step(Lr(k));
    for (const TrainableParameter& p : adam.parameters()) {
      const at::Tensor& expected = ref_.at("param." + std::to_string(k) + "." + p.name);
      EXPECT_LE(RelativeError(p.param, expected), 1e-6) << p.name << " after update " << k;
      EXPECT_FALSE(p.param.grad().defined()) << "Step clears the gradients";
    }
  }
  const std::map<std::string, at::Tensor> state = adam.StateTensors();
  for (const std::string& name : kNames) {
    EXPECT_LE(RelativeError(state.at(name + ".exp_avg"), ref_.at("exp_avg." + name)), 1e-6) << name;
    EXPECT_LE(RelativeError(state.at(name + ".exp_avg_sq"), ref_.at("exp_avg_sq." + name)), 1e-6) << name;
  }
  EXPECT_EQ(adam.steps(), 5);
}

TEST_F(AdamWTest, Bf16ParametersUpdateAnFp32MasterCopy) {
  AdamW adam(Parameters(at::kBFloat16), AdamWOptions{kBeta1, kBeta2, kEps, kWeightDecay});
  for (int k = 0; k < 5; ++k) {
    // Two micro-batches of half the gradient each: accumulation happens in fp32.
    for (int half = 0; half < 2; ++half) {
      for (const TrainableParameter& p : adam.parameters())
        p.param.mutable_grad() = (ref_.at("grad." + std::to_string(k) + "." + p.name) * 0.5).to(at::kBFloat16);
      adam.AccumulateGradients();
    }
    adam.Step(Lr(k));
  }
  const std::map<std::string, at::Tensor> state = adam.StateTensors();
  for (const TrainableParameter& p : adam.parameters()) {
    const at::Tensor& master = state.at(p.name + ".master");
    EXPECT_EQ(master.scalar_type(), at::kFloat);
    // bf16 inputs and gradients carry ~3 significant digits: the master follows torch's fp32 run to bf16 accuracy.
    EXPECT_LE(RelativeError(master, ref_.at("param.4." + p.name)), 1e-2) << p.name;
    EXPECT_TRUE(at::equal(p.param, master.to(at::kBFloat16))) << "the bf16 weights are the rounded master";
  }
}

TEST_F(AdamWTest, StateRoundTripContinuesIdentically) {
  AdamW a(Parameters(at::kFloat), AdamWOptions{kBeta1, kBeta2, kEps, kWeightDecay});
  for (int k = 0; k < 3; ++k) {
    SetGradients(a, k);
    a.Step(Lr(k));
  }
  std::vector<TrainableParameter> copies;
  for (const TrainableParameter& p : a.parameters())
    copies.push_back({p.name, p.param.detach().clone().requires_grad_(true), p.decay});
  AdamW b(std::move(copies), AdamWOptions{kBeta1, kBeta2, kEps, kWeightDecay});
  std::map<std::string, at::Tensor> saved;
  for (const auto& [key, tensor] : a.StateTensors()) saved[key] = tensor.clone();
  ASSERT_TRUE(b.LoadState(saved, a.steps()).ok());
  for (int k = 3; k < 5; ++k) {
    SetGradients(a, k);
    SetGradients(b, k);
    a.Step(Lr(k));
    b.Step(Lr(k));
  }
  for (size_t i = 0; i < kNames.size(); ++i)
    EXPECT_TRUE(at::equal(a.parameters()[i].param, b.parameters()[i].param)) << kNames[i];

  saved.erase("lm_head.weight.exp_avg");
  absl::Status missing = b.LoadState(saved, 5);
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(missing.message()).find("lm_head.weight.exp_avg"), std::string::npos) << missing;
}

TEST_F(AdamWTest, ScaledGradientsClipTheGlobalNorm) {
  AdamW adam(Parameters(at::kFloat), AdamWOptions{});
  SetGradients(adam, 3);
  const double norm = adam.GradientNorm();
  adam.ScaleGradients(0.5 / norm);
  EXPECT_NEAR(adam.GradientNorm(), 0.5, 1e-6);
  adam.ZeroGradients();
  EXPECT_EQ(adam.GradientNorm(), 0.0);
}

// --- schedule, RNG --------------------------------------------------------------------------------------------

TEST(LrSchedule, WarmupThenCosineToTheFloorAtTheLastStep) {
  const LrSchedule s{ScheduleKind::kCosine, 1e-3, 4, 20, 0.1};
  for (int64_t k = 0; k < 4; ++k) EXPECT_DOUBLE_EQ(s.At(k), 1e-3 * (k + 1) / 4.0) << k;
  for (int64_t k = 4; k < 20; ++k) {
    const double progress = (k - 4) / 15.0;
    EXPECT_DOUBLE_EQ(s.At(k), 1e-3 * (0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * progress)))) << k;
  }
  EXPECT_DOUBLE_EQ(s.At(3), 1e-3);
  EXPECT_DOUBLE_EQ(s.At(19), 1e-4);
  EXPECT_DOUBLE_EQ(s.At(50), 1e-4) << "past the end it stays at the floor";
  const LrSchedule constant{ScheduleKind::kConstant, 2e-5, 2, 100, 0.0};
  EXPECT_DOUBLE_EQ(constant.At(0), 1e-5);
  EXPECT_DOUBLE_EQ(constant.At(1), 2e-5);
  EXPECT_DOUBLE_EQ(constant.At(99), 2e-5);
  EXPECT_FALSE(ParseScheduleKind("linear").ok());
}

TEST(RngState, RestoredGeneratorsRepeatTheirDraws) {
  at::manual_seed(3);
  at::randn({4});
  const std::map<std::string, std::string> saved = CaptureRngStates();
  const at::Tensor first = at::randn({16});
  at::randn({100});
  auto skipped = RestoreRngStates(saved);
  ASSERT_TRUE(skipped.ok()) << skipped.status();
  EXPECT_TRUE(at::equal(first, at::randn({16})));
  // A CUDA state from another machine is reported, not fatal, where that device does not exist.
  std::map<std::string, std::string> foreign = saved;
  foreign["cuda:63"] = saved.at("cpu");
  auto reported = RestoreRngStates(foreign);
  ASSERT_TRUE(reported.ok());
  EXPECT_EQ(*reported, std::vector<std::string>{"cuda:63"});
}

}  // namespace
}  // namespace agora
