// Bad checkpoints: each error names the file and the tensor, and a failed load changes nothing.
#include <fstream>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "models/checkpoint.h"
#include "models/safetensors.h"
#include "tests/test_util.h"

namespace agora {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::FixtureDir;

class BadCheckpoint : public ::testing::Test {
 protected:
  // A private copy of a single-file oracle checkpoint to break.
  void SetUp() override {
    dir_ = FixtureDir("AGORA_SCRATCH") / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const fs::path source = FixtureDir("AGORA_MODEL_FIXTURES") / "llama3_gqa";
    fs::copy_file(source / "config.json", dir_ / "config.json");
    fs::copy_file(source / "model.safetensors", dir_ / "model.safetensors");
  }
  // Rewrites model.safetensors through `edit`, which may drop, add or change tensors.
  void Rewrite(const std::function<void(std::vector<TensorToWrite>&)>& edit) {
    auto file = SafetensorsFile::Open(dir_ / "model.safetensors");
    ASSERT_TRUE(file.ok());
    std::vector<TensorToWrite> tensors;
    for (const TensorInfo& t : (*file)->tensors()) tensors.push_back({t.name, t.dtype, t.shape, (*file)->Data(t)});
    edit(tensors);
    ASSERT_TRUE(WriteSafetensors(dir_ / "model.safetensors.new", tensors, {}).ok());
    file->reset();
    fs::rename(dir_ / "model.safetensors.new", dir_ / "model.safetensors");
  }
  std::string LoadError() {
    auto loaded = LoadModel(dir_, {at::kFloat, at::kCPU});
    EXPECT_FALSE(loaded.ok());
    return loaded.ok() ? "" : std::string(loaded.status().message());
  }
  fs::path dir_;
  std::vector<float> scratch_;
};

TEST_F(BadCheckpoint, MissingTensor) {
  Rewrite([](auto& t) { std::erase_if(t, [](auto& x) { return x.name == "model.layers.1.mlp.up_proj.weight"; }); });
  EXPECT_THAT(LoadError(), AllOf(HasSubstr(dir_.string()), HasSubstr("lacks 1 tensor"),
                                 HasSubstr("model.layers.1.mlp.up_proj.weight")));
}

TEST_F(BadCheckpoint, UnexpectedTensor) {
  scratch_.assign(4, 1.0f);
  Rewrite([&](auto& t) {
    t.push_back({"model.layers.0.self_attn.q_norm.weight", DType::kF32, {4},
                 absl::Span<const std::byte>(reinterpret_cast<const std::byte*>(scratch_.data()), 16)});
  });
  EXPECT_THAT(LoadError(), AllOf(HasSubstr("does not have"), HasSubstr("model.layers.0.self_attn.q_norm.weight"),
                                 HasSubstr("model.safetensors")));
}

TEST_F(BadCheckpoint, ShapeMismatchNamesBothShapes) {
  std::ifstream in(dir_ / "config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  config["intermediate_size"] = 96;
  std::ofstream(dir_ / "config.json") << config.dump();
  EXPECT_THAT(LoadError(), AllOf(HasSubstr(dir_.string() + "/model.safetensors"), HasSubstr("model.layers.0.mlp.gate_proj.weight"),
                                 HasSubstr("has shape [128, 64]"), HasSubstr("expects [96, 64]")));
}

TEST_F(BadCheckpoint, UnsupportedDtype) {
  scratch_.assign(64 * 2, 0.5f);  // 64 doubles' worth of bytes
  Rewrite([&](auto& t) {
    for (auto& x : t)
      if (x.name == "model.norm.weight")
        x = {x.name, DType::kF64, {64}, absl::Span<const std::byte>(reinterpret_cast<const std::byte*>(scratch_.data()), 512)};
  });
  EXPECT_THAT(LoadError(), AllOf(HasSubstr("model.safetensors"), HasSubstr("'model.norm.weight' has dtype F64"),
                                 HasSubstr("expected F32, F16 or BF16")));
}

TEST_F(BadCheckpoint, TruncatedFile) {
  fs::resize_file(dir_ / "model.safetensors", fs::file_size(dir_ / "model.safetensors") - 100);
  EXPECT_THAT(LoadError(), HasSubstr(dir_.string() + "/model.safetensors"));
}

TEST_F(BadCheckpoint, CorruptHeader) {
  std::fstream f(dir_ / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(8);
  f.write("#garbage", 8);
  f.close();
  EXPECT_THAT(LoadError(), HasSubstr(dir_.string() + "/model.safetensors"));
}

TEST_F(BadCheckpoint, NoWeightsAtAll) {
  fs::remove(dir_ / "model.safetensors");
  EXPECT_THAT(LoadError(), AllOf(HasSubstr("no model.safetensors or model.safetensors.index.json")));
}

TEST_F(BadCheckpoint, IndexNamesAMissingShard) {
  nlohmann::json index = {{"metadata", {{"total_size", 1}}},
                          {"weight_map", {{"model.norm.weight", "model-00002-of-00002.safetensors"}}}};
  std::ofstream(dir_ / "model.safetensors.index.json") << index.dump();
  EXPECT_THAT(LoadError(), HasSubstr("model-00002-of-00002.safetensors"));
}

TEST_F(BadCheckpoint, FailedLoadLeavesTheModelUntouched) {
  auto good = LoadModel(dir_, {at::kFloat, at::kCPU});
  ASSERT_TRUE(good.ok()) << good.status();
  at::Tensor before = good->model->model->norm->weight.clone();
  Rewrite([](auto& t) { std::erase_if(t, [](auto& x) { return x.name == "lm_head.weight"; }); });
  EXPECT_FALSE(LoadWeights(good->model, dir_).ok());
  EXPECT_TRUE(at::equal(before, good->model->model->norm->weight));
}

// Loading maps the file and copies into parameters allocated once: the process's anonymous memory grows by
// the parameters, not by a second copy of the weights.
TEST(CheckpointMemory, LoadKeepsOneCopyOfTheWeights) {
  LlamaConfig c;
  c.vocab_size = 8000;
  c.hidden_size = 512;
  c.intermediate_size = 1536;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 8;
  c.head_dim = 64;
  const fs::path dir = FixtureDir("AGORA_SCRATCH") / "memory_model";
  int64_t param_bytes = 0;
  {
    LlamaForCausalLM model(c, ModelOptions{});
    at::manual_seed(0);
    for (auto& p : model->parameters()) {
      at::NoGradGuard g;
      p.normal_();
      param_bytes += p.nbytes();
    }
    ASSERT_TRUE(SaveModel(model, dir, {.dtype = at::kBFloat16}).ok());
  }
  const long before = testing::RssAnonKb();
  auto loaded = LoadModel(dir, {at::kFloat, at::kCPU});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const double grown = (testing::RssAnonKb() - before) * 1024.0;
  std::printf("parameters %.1f MB, anonymous memory grew %.1f MB\n", param_bytes / 1e6, grown / 1e6);
  EXPECT_LT(grown, 1.15 * param_bytes);
}

}  // namespace
}  // namespace agora
