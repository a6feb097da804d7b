#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "models/checkpoint.h"
#include "models/generation.h"
#include "tests/test_util.h"

namespace agora {
namespace {

using testing::FixtureDir;

TEST(Sampling, TopKAndTopPKeepExactlyTheRightTokens) {
  // probabilities 0.5, 0.3, 0.15, 0.05 (as logits)
  at::Tensor logits = at::tensor({0.5, 0.3, 0.15, 0.05}, at::kDouble).log().to(at::kFloat).unsqueeze(0);
  SamplingOptions o;
  o.temperature = 1.0;
  o.top_p = 0.8;  // 0.5 + 0.3 reaches 0.8: the first two stay
  at::Tensor p = SamplingProbabilities(logits, o);
  EXPECT_NEAR(p[0][0].item<float>(), 0.5 / 0.8, 1e-6);
  EXPECT_NEAR(p[0][1].item<float>(), 0.3 / 0.8, 1e-6);
  EXPECT_EQ(p[0][2].item<float>(), 0.0f);
  EXPECT_EQ(p[0][3].item<float>(), 0.0f);
  o.top_p = 1.0;
  o.top_k = 3;
  p = SamplingProbabilities(logits, o);
  EXPECT_NEAR(p[0][2].item<float>(), 0.15 / 0.95, 1e-6);
  EXPECT_EQ(p[0][3].item<float>(), 0.0f);
  o.top_k = 0;
  o.temperature = 2.0;  // p_i ∝ sqrt(p_i)
  p = SamplingProbabilities(logits, o);
  const double z = std::sqrt(0.5) + std::sqrt(0.3) + std::sqrt(0.15) + std::sqrt(0.05);
  EXPECT_NEAR(p[0][3].item<float>(), std::sqrt(0.05) / z, 1e-6);
}

TEST(Sampling, MinPDropsTokensLessLikelyThanItsShareOfTheBest) {
  const at::Tensor logits = at::tensor({0.5, 0.3, 0.15, 0.05}).log().view({1, 4});
  SamplingOptions o;
  o.temperature = 1.0;
  o.min_p = 0.5;  // threshold 0.25: keeps 0.5 and 0.3
  const at::Tensor p = SamplingProbabilities(logits, o);
  EXPECT_NEAR(p[0][0].item<float>(), 0.5 / 0.8, 1e-6);
  EXPECT_NEAR(p[0][1].item<float>(), 0.3 / 0.8, 1e-6);
  EXPECT_EQ(p[0][2].item<float>(), 0.0f);
  EXPECT_EQ(p[0][3].item<float>(), 0.0f);
}

class GenerationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = LoadModel(FixtureDir("AGORA_MODEL_FIXTURES") / "llama3_gqa", {at::kFloat, at::kCPU});
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    model_ = loaded->model;
  }
  LlamaForCausalLM model_{nullptr};
  std::vector<std::vector<int64_t>> prompts_ = {{1, 17, 42, 9}, {1, 5}, {1, 300, 301, 302, 303, 304, 305}};
};

TEST_F(GenerationTest, SeededSamplingIsReproducibleAndSeedDependent) {
  SamplingOptions o;
  o.max_new_tokens = 12;
  o.temperature = 1.0;
  o.top_p = 0.95;
  o.seed = 7;
  auto a = Generate(model_, prompts_, o), b = Generate(model_, prompts_, o);
  EXPECT_EQ(a, b);
  o.seed = 8;
  EXPECT_NE(Generate(model_, prompts_, o), a);
}

TEST_F(GenerationTest, TopKOneIsGreedy) {
  SamplingOptions greedy;
  greedy.max_new_tokens = 10;
  SamplingOptions top1 = greedy;
  top1.temperature = 0.7;
  top1.top_k = 1;
  EXPECT_EQ(Generate(model_, prompts_, greedy), Generate(model_, prompts_, top1));
}

TEST_F(GenerationTest, BatchedEqualsOneByOne) {
  SamplingOptions o;
  o.max_new_tokens = 16;
  auto batched = Generate(model_, prompts_, o);
  for (size_t i = 0; i < prompts_.size(); ++i) EXPECT_EQ(batched[i], Generate(model_, {prompts_[i]}, o)[0]);
}

TEST_F(GenerationTest, StopsAtStopTokenAndKeepsIt) {
  SamplingOptions o;
  o.max_new_tokens = 16;
  auto free_run = Generate(model_, {prompts_[0]}, o)[0];
  ASSERT_GE(free_run.size(), 4u);
  o.stop_ids = {free_run[3]};
  auto stopped = Generate(model_, {prompts_[0]}, o)[0];
  // stops at the first occurrence of that token, which is at index 3 or earlier
  ASSERT_LE(stopped.size(), 4u);
  EXPECT_EQ(stopped.back(), free_run[3]);
}

TEST_F(GenerationTest, RejectsTooLongRequests) {
  SamplingOptions o;
  o.max_new_tokens = 1000;  // max_position_embeddings is 256
  EXPECT_THROW(Generate(model_, prompts_, o), c10::Error);
}

}  // namespace
}  // namespace agora
