// AdamW (trainer/adamw.h) against torch.optim.AdamW (the oracle's recorded trajectory), fp32 and
// bf16-with-fp32-master, the gradient norm against torch.nn.utils.get_total_norm, and a state round trip that
// continues identically.
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/test_util.h"
#include "trainer/adamw.h"

namespace agora {
namespace {

using agora::testing::FixtureDir;
using agora::testing::ReadTensors;
using agora::testing::RelativeError;

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

}  // namespace
}  // namespace agora
