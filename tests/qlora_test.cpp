// QLoRA: a model whose projections are quantised at load (lora.quantize_base) computes what the same model with the
// dequantised weights computes, forward and backward, adapters included; its memory is the quantised storage; what
// cannot be done with a quantised base (saving it, merging into it) is refused.
#include <malloc.h>

#include <algorithm>
#include <map>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "models/checkpoint.h"
#include "models/hf_state_dict.h"
#include "models/lora.h"
#include "models/quantized_weight.h"
#include "tests/test_util.h"

namespace agora {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::RelativeError;

const fs::path kTiny = fs::path(AGORA_SOURCE_DIR) / "assets" / "tiny-llama";

LlamaForCausalLM Load(const fs::path& dir, BaseQuantization quantize) {
  ModelOptions options{at::kFloat, at::kCPU};
  options.quantize_base = quantize;
  absl::StatusOr<LoadedModel> loaded = LoadModel(dir, options);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  return loaded.ok() ? loaded->model : LlamaForCausalLM(nullptr);
}

// Rank-4 adapters on every projection, B drawn (PEFT starts it at zero, which would hide the adapter's path).
void AddDrawnAdapters(LlamaForCausalLM& model) {
  LoraConfig config;
  config.rank = 4;
  config.alpha = 8;
  config.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  ASSERT_TRUE(AddLora(model, config, at::make_generator<at::CPUGeneratorImpl>(7)).ok());
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(8);
  at::NoGradGuard no_grad;
  for (auto& [name, param] : LoraParameters(model))
    if (name.find("lora_B") != std::string::npos) param.copy_(at::randn(param.sizes(), gen) * 0.1);
  for (auto& [name, param] : LoraParameters(model)) param.set_requires_grad(true);
}

class QloraForward : public ::testing::TestWithParam<BaseQuantization> {};

// The quantised model against a plain one holding the dequantised weights (at::linear, no quantised code on its
// path): logits and the adapters' gradients agree to fp32 rounding.
TEST_P(QloraForward, MatchesLoraOnTheDequantisedWeights) {
  LlamaForCausalLM quantized = Load(kTiny, GetParam());
  LlamaForCausalLM dense = Load(kTiny, BaseQuantization::kNone);
  ASSERT_TRUE(quantized && dense);
  const auto projections = QuantizedProjections(quantized);
  ASSERT_EQ(projections.size(), 2u * 7u);  // the tiny model's 2 layers
  std::map<std::string, at::Tensor> dense_params;
  for (auto& [name, param] : HfStateDict(dense)) dense_params[name] = param;
  {
    at::NoGradGuard no_grad;
    for (const auto& [name, linear] : projections) {
      const at::Tensor original = dense_params.at(name).clone();
      dense_params.at(name).copy_(linear->quantized->Dequantize(at::kFloat));
      // The quantisation is real: the weights moved, by about what 4 or 8 bits allow.
      const double moved = RelativeError(dense_params.at(name), original);
      EXPECT_GT(moved, GetParam() == BaseQuantization::kNf4 ? 1e-2 : 1e-4) << name;
      EXPECT_LT(moved, GetParam() == BaseQuantization::kNf4 ? 0.2 : 1e-2) << name;
    }
  }
  AddDrawnAdapters(quantized);
  AddDrawnAdapters(dense);

  const at::Tensor ids = at::randint(800, {2, 24}, at::make_generator<at::CPUGeneratorImpl>(3), at::kLong);
  const at::Tensor positions = DefaultPositions(2, 24, at::kCPU);
  auto loss_and_logits = [&](LlamaForCausalLM& model) {
    const at::Tensor logits = model->Logits(model->forward(ids, positions, AttentionMask{}));
    const at::Tensor loss = at::cross_entropy_loss(logits.view({-1, 800}).narrow(0, 0, 47), ids.view(-1).narrow(0, 1, 47));
    loss.backward();
    return logits.detach();
  };
  const double logits_error = RelativeError(loss_and_logits(quantized), loss_and_logits(dense));
  EXPECT_LE(logits_error, 1e-5);
  const auto dense_adapters = LoraParameters(dense);
  const auto quantized_adapters = LoraParameters(quantized);
  ASSERT_EQ(dense_adapters.size(), quantized_adapters.size());
  double worst_gradient = 0;
  for (size_t i = 0; i < dense_adapters.size(); ++i) {
    ASSERT_TRUE(quantized_adapters[i].second.grad().defined()) << quantized_adapters[i].first;
    const double error = RelativeError(quantized_adapters[i].second.grad(), dense_adapters[i].second.grad());
    EXPECT_LE(error, 1e-5) << quantized_adapters[i].first;
    worst_gradient = std::max(worst_gradient, error);
  }
  std::printf("%s base: logits relative error %.3g, worst adapter gradient %.3g (%zu tensors)\n",
              BaseQuantizationName(GetParam()).c_str(), logits_error, worst_gradient, dense_adapters.size());
  // The base is no parameter of the quantised model: nothing but adapters, norms and embeddings can get gradients.
  for (const auto& item : quantized->named_parameters())
    EXPECT_FALSE(item.key().ends_with("proj.weight") && !IsLoraParameterName(item.key())) << item.key();
}

INSTANTIATE_TEST_SUITE_P(Kinds, QloraForward, ::testing::Values(BaseQuantization::kNf4, BaseQuantization::kInt8),
                         [](const auto& info) { return BaseQuantizationName(info.param); });

// Each weight: n/2 bytes of codes, n/64 absmax codes, a float32 absmax2 per 256 blocks (a partial one included)
// and the float32 offset: 0.5159 bytes a parameter on a 7B projection, a little more on the tiny model's.
TEST(QloraStorage, Nf4HoldsAboutHalfAByteAParameter) {
  LlamaForCausalLM model = Load(kTiny, BaseQuantization::kNf4);
  int64_t values = 0, bytes = 0, expected = 0;
  for (const auto& [name, linear] : QuantizedProjections(model)) {
    const int64_t n = linear->quantized->numel(), blocks = n / 64;
    values += n;
    bytes += linear->quantized->bytes();
    expected += n / 2 + blocks + 4 * ((blocks + 255) / 256) + 4;
  }
  std::printf("tiny model: %lld projection weights in %lld bytes: %.4f bytes each\n", static_cast<long long>(values),
              static_cast<long long>(bytes), static_cast<double>(bytes) / static_cast<double>(values));
  EXPECT_EQ(bytes, expected);
  const int64_t n = 4096 * 4096, blocks = n / 64;  // Llama-2-7B's q_proj
  EXPECT_NEAR(static_cast<double>(n / 2 + blocks + 4 * (blocks / 256) + 4) / n, 0.51587, 1e-5);
}

// A base loaded quantised: the process's anonymous memory grows by the quantised storage plus the layers kept dense
// (embeddings, norms, lm_head), not by the dense projections.
TEST(QloraStorage, LoadingQuantisedGrowsMemoryByTheCodes) {
  LlamaConfig c;
  c.vocab_size = 512;
  c.hidden_size = 512;
  c.intermediate_size = 1536;
  c.num_hidden_layers = 6;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 8;
  c.head_dim = 64;
  const fs::path dir = testing::FixtureDir("AGORA_SCRATCH") / "qlora_memory_model";
  {
    LlamaForCausalLM model(c, ModelOptions{});
    at::manual_seed(0);
    at::NoGradGuard g;
    for (auto& p : model->parameters()) p.normal_();
    ASSERT_TRUE(SaveModel(model, dir, {.dtype = at::kBFloat16}).ok());
  }
  malloc_trim(0);
  const long before = testing::RssAnonKb();
  LlamaForCausalLM model = Load(dir, BaseQuantization::kNf4);
  ASSERT_TRUE(model);
  malloc_trim(0);  // what the quantisation's temporaries left in malloc's free lists is not the model's
  const double grown = (testing::RssAnonKb() - before) * 1024.0;
  int64_t quantized_values = 0, quantized_bytes = 0, dense_bytes = 0;
  for (const auto& [name, linear] : QuantizedProjections(model)) {
    quantized_values += linear->quantized->numel();
    quantized_bytes += linear->quantized->bytes();
  }
  for (const auto& p : model->parameters()) dense_bytes += p.nbytes();
  const double fp32_projections = 4.0 * static_cast<double>(quantized_values);
  std::printf("projections %.1f MB in fp32, %.1f MB as NF4; dense layers %.1f MB; anonymous memory grew %.1f MB\n",
              fp32_projections / 1e6, quantized_bytes / 1e6, dense_bytes / 1e6, grown / 1e6);
  EXPECT_LT(grown, 1.5 * static_cast<double>(quantized_bytes + dense_bytes));
  EXPECT_LT(grown, 0.25 * fp32_projections);
}

TEST(QloraRefusals, SavingOrMergingIntoAQuantisedBase) {
  LlamaForCausalLM model = Load(kTiny, BaseQuantization::kNf4);
  const absl::Status saved = SaveModel(model, testing::FixtureDir("AGORA_SCRATCH") / "qlora_not_saved");
  EXPECT_EQ(saved.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(saved.message(), HasSubstr("cannot save a model whose projections are quantised"));
  AddDrawnAdapters(model);
  try {
    MergeLora(model);
    ADD_FAILURE() << "merged into a quantised weight";
  } catch (const c10::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot merge an adapter into a quantised weight"));
  }
}

}  // namespace
}  // namespace agora
