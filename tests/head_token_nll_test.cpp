// The training head's loss (models/causal_lm_loss.h) with the fused kernel against torch's cross-entropy on random
// data (label "loss"): tied embeddings, the trainer's PackedTokenNll on the tiny model (every parameter's gradient),
// the recipe key that picks it; on a GPU, bf16 against float64.
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "data/packing.h"
#include "models/causal_lm_loss.h"
#include "models/checkpoint.h"
#include "tests/test_util.h"
#include "trainer/device_batch.h"
#include "trainer/objectives/sequence_nll.h"
#include "trainer/recipe.h"

namespace agora {
namespace {

namespace fs = std::filesystem;
using agora::testing::RelativeError;
using ::testing::HasSubstr;

// Tied embeddings: the head's matrix also feeds the input embedding; both gradients reach it.
TEST(HeadTokenNll, FusedEqualsTorchWithTiedEmbeddings) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const at::Tensor table = at::randn({300, 32}, gen).mul_(0.2);
  const at::Tensor ids = at::randint(0, 300, {45}, gen, at::kLong);
  at::Tensor targets = at::randint(0, 300, {45}, gen, at::kLong);
  targets.masked_fill_(at::rand({45}, gen) < 0.3, kIgnoreLabel);
  std::vector<at::Tensor> nll, grads;
  for (HeadLoss how : {HeadLoss::kTorch, HeadLoss::kFused}) {
    const at::Tensor w = table.clone().requires_grad_();
    const at::Tensor hidden = at::embedding(w, ids).tanh();
    nll.push_back(HeadTokenNll(hidden, w, targets, how));
    nll.back().sum().backward();
    grads.push_back(w.grad());
  }
  EXPECT_LE(RelativeError(nll[1], nll[0]), 1e-5);
  EXPECT_EQ(nll[1].masked_select(targets.eq(kIgnoreLabel)).abs().sum().item<double>(), 0.0);
  EXPECT_LE(RelativeError(grads[1], grads[0]), 1e-5);
}

// The trainer's loss path: PackedTokenNll on the tiny model, every parameter's gradient, fused vs torch.
TEST(HeadTokenNll, PackedTokenNllFusedEqualsTorchOnTheTinyModel) {
  auto loaded = LoadModel(fs::path(AGORA_SOURCE_DIR) / "assets/tiny-llama", ModelOptions{at::kFloat, at::kCPU});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  LlamaForCausalLM model = loaded->model;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(9);
  std::vector<TokenizedSample> samples(3);
  for (TokenizedSample& s : samples) {
    const at::Tensor ids = at::randint(3, model->config().vocab_size, {21}, gen, at::kLong);
    for (int64_t t = 0; t < 21; ++t) {
      s.ids.push_back(static_cast<int32_t>(ids[t].item<int64_t>()));
      s.labels.push_back(t > 0 && t % 3 != 0 ? s.ids.back() : kIgnoreLabel);
    }
  }
  const PackedBatch packed = AssembleBatch({{{&samples[0], 0}, {&samples[1], 1}, {&samples[2], 2}}}, 64, 0);
  const DeviceBatch batch = ToDevice(packed, at::kCPU);
  std::vector<at::Tensor> nll;
  std::vector<std::vector<at::Tensor>> grads;
  for (HeadLoss how : {HeadLoss::kTorch, HeadLoss::kFused}) {
    model->zero_grad();
    nll.push_back(PackedTokenNll(model, batch, how));
    nll.back().sum().backward();
    grads.emplace_back();
    for (const at::Tensor& p : model->parameters()) grads.back().push_back(p.grad().clone());
  }
  EXPECT_LE(RelativeError(nll[1], nll[0]), 1e-5);
  for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_LE(RelativeError(grads[1][i], grads[0][i]), 1e-5) << i;
}

TEST(HeadTokenNll, RecipeKeyLoss) {
  const std::string yaml = "model.path: m\ndata.train.path: d\noutput_dir: o\n";
  EXPECT_EQ(ParseRecipe(yaml, "r.yaml", {})->loss, LossChoice::kAuto);
  EXPECT_EQ(ParseRecipe(yaml, "r.yaml", {"loss=fused"})->loss, LossChoice::kFused);
  EXPECT_EQ(ParseRecipe(yaml, "r.yaml", {"loss=torch"})->loss, LossChoice::kTorch);
  EXPECT_THAT(std::string(ParseRecipe(yaml, "r.yaml", {"loss=chunked"}).status().message()),
              HasSubstr("'chunked' is not one of auto|fused|torch"));
}

// --- GPU ---------------------------------------------------------------------------------------------------------

TEST(HeadTokenNllGpu, FusedEqualsTorchOnTheTinyModelInBFloat16) {
  AGORA_SKIP_WITHOUT_CUDA();
  auto loaded = LoadModel(fs::path(AGORA_SOURCE_DIR) / "assets/tiny-llama", ModelOptions{at::kBFloat16, at::kCUDA});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  LlamaForCausalLM model = loaded->model;
  const at::Tensor hidden = at::randn({300, model->config().hidden_size}, at::device(at::kCUDA).dtype(at::kBFloat16));
  at::Tensor targets = at::randint(0, model->config().vocab_size, {300}, at::device(at::kCUDA).dtype(at::kLong));
  targets.masked_fill_(at::rand({300}, at::kCUDA) < 0.25, kIgnoreLabel);
  const at::Tensor fused = HeadTokenNll(hidden, model->head_weight(), targets, HeadLoss::kFused);
  const at::Tensor reference = HeadTokenNll(hidden.to(at::kDouble), model->head_weight().to(at::kDouble), targets,
                                            HeadLoss::kTorch);
  EXPECT_LE(RelativeError(fused, reference), 1e-2);
}

}  // namespace
}  // namespace agora
