// Parity with transformers: the oracle (tests/oracle/make_model_fixtures.py) saved three tiny random Llama
// checkpoints and what transformers computes on them; Agora must compute the same.
#include <fstream>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "models/causal_lm_loss.h"
#include "models/checkpoint.h"
#include "models/generation.h"
#include "tests/test_util.h"

namespace agora {
namespace {

using testing::FixtureDir;
using testing::ReadTensors;
using testing::RelativeError;

class LlamaParity : public ::testing::TestWithParam<std::string> {
 protected:
  std::filesystem::path dir() const { return FixtureDir("AGORA_MODEL_FIXTURES"); }
  LoadedModel Load(const ModelOptions& options) const {
    auto loaded = LoadModel(dir() / GetParam(), options);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return loaded.ok() ? *std::move(loaded) : LoadedModel{};
  }
  std::map<std::string, at::Tensor> Reference() const {
    return ReadTensors(dir() / (GetParam() + "_reference.safetensors"));
  }
  at::Tensor Logits(LoadedModel& m, const at::Tensor& ids) const {
    const ModelOptions& o = m.model->options();
    at::Tensor input = ids.to(o.device);
    return m.model->Logits(m.model->forward(input, DefaultPositions(ids.size(0), ids.size(1), o.device), {}));
  }
  // Agora in `dtype` on `device` against transformers in the same dtype on the CPU.
  void ExpectParity(at::ScalarType dtype, const at::Device& device, const std::string& reference, double bound) {
    LoadedModel m = Load({dtype, device});
    auto ref = Reference();
    const double error = RelativeError(Logits(m, ref["input_ids"]), ref[reference]);
    std::printf("%s %s on %s: logits relative error %.3g (bound %g)\n", GetParam().c_str(), c10::toString(dtype),
                device.str().c_str(), error, bound);
    EXPECT_LE(error, bound);
  }
};

TEST_P(LlamaParity, Fp32LogitsMatchTransformers) { ExpectParity(at::kFloat, at::kCPU, "logits_fp32", 1e-5); }

TEST_P(LlamaParity, LossMatchesTransformers) {
  LoadedModel m = Load({at::kFloat, at::kCPU});
  auto ref = Reference();
  at::Tensor loss = CausalLmLoss(Logits(m, ref["input_ids"]), ref["labels"]);
  EXPECT_LE(RelativeError(loss.reshape({1}), ref["loss"]), 1e-5)
      << "agora " << loss.item<double>() << " vs transformers " << ref["loss"].item<double>();
}

TEST_P(LlamaParity, Bf16LogitsMatchTransformersOnCpu) { ExpectParity(at::kBFloat16, at::kCPU, "logits_bf16", 1e-2); }

TEST_P(LlamaParity, Fp16LogitsMatchTransformersOnCpu) { ExpectParity(at::kHalf, at::kCPU, "logits_fp16", 1e-2); }

TEST_P(LlamaParity, Bf16LogitsMatchTransformersOnCuda) {
  AGORA_SKIP_WITHOUT_CUDA();
  ExpectParity(at::kBFloat16, at::Device(at::kCUDA, 0), "logits_bf16", 1e-2);
}

TEST_P(LlamaParity, Fp16LogitsMatchTransformersOnCuda) {
  AGORA_SKIP_WITHOUT_CUDA();
  ExpectParity(at::kHalf, at::Device(at::kCUDA, 0), "logits_fp16", 1e-2);
}

// TF32 is off by default in LibTorch, so CUDA fp32 matmuls are true fp32.
TEST_P(LlamaParity, Fp32LogitsMatchTransformersOnCuda) {
  AGORA_SKIP_WITHOUT_CUDA();
  ExpectParity(at::kFloat, at::Device(at::kCUDA, 0), "logits_fp32", 1e-5);
}

// The three prompts have different lengths and are decoded as one left-padded batch; transformers decoded
// each alone. Every greedy token must match.
TEST_P(LlamaParity, BatchedGreedyContinuationsMatchTransformers) {
  LoadedModel m = Load({at::kFloat, at::kCPU});
  std::ifstream in(dir() / (GetParam() + "_generation.json"));
  nlohmann::json expected = nlohmann::json::parse(in);
  auto prompts = expected["prompts"].get<std::vector<std::vector<int64_t>>>();
  SamplingOptions options;
  options.max_new_tokens = expected["max_new_tokens"].get<int64_t>();
  options.stop_ids = expected["stop_ids"].get<std::vector<int64_t>>();
  auto generated = Generate(m.model, prompts, options);
  auto want = expected["continuations"].get<std::vector<std::vector<int64_t>>>();
  ASSERT_EQ(generated.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(generated[i], want[i]) << "prompt " << i;
}

INSTANTIATE_TEST_SUITE_P(ThreeShapes, LlamaParity, ::testing::Values("llama2_mha", "llama3_gqa", "tied_headdim"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace agora
