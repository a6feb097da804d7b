// NaN and Inf in stored weights: the scan agrees with torch's isfinite on every float dtype Agora reads, a model
// folder holding one is refused naming the file, the tensor, the count and the first index (or loaded and listed
// under model.on_nonfinite_weights=warn), and adapters or optimizer state holding one are always refused.
#include <cmath>
#include <cstring>
#include <limits>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "models/checkpoint.h"
#include "models/nonfinite_weights.h"
#include "models/safetensors.h"
#include "models/tensor_file.h"
#include "tests/fixture_dir.h"

namespace agora {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

// Random values with NaN, +Inf and -Inf at drawn places (and 65000, finite but near fp16's largest, which must not
// count).
at::Tensor RandomWithSpecials(at::ScalarType dtype, int64_t n, int64_t specials, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor values = at::randn({n}, gen, at::TensorOptions().dtype(at::kDouble)).mul_(100).to(dtype);
  const at::Tensor where = at::randint(n, {specials}, gen, at::TensorOptions().dtype(at::kLong));
  const double kinds[] = {std::nan(""), -std::nan(""), std::numeric_limits<double>::infinity(),
                          -std::numeric_limits<double>::infinity()};
  for (int64_t i = 0; i < specials; ++i) values[where[i].item<int64_t>()] = kinds[i % 4];
  if (at::isfinite(values[n / 2]).item<bool>()) values[n / 2] = 65000.0;
  return values;
}

absl::Span<const std::byte> BytesOf(const at::Tensor& t) {
  return {static_cast<const std::byte*>(t.data_ptr()), static_cast<size_t>(t.nbytes())};
}

TEST(CountNonfinite, AgreesWithTorchOnEveryFloatDtype) {
  const std::pair<at::ScalarType, DType> dtypes[] = {
      {at::kFloat, DType::kF32}, {at::kBFloat16, DType::kBF16}, {at::kHalf, DType::kF16}, {at::kDouble, DType::kF64}};
  for (const auto& [torch_dtype, dtype] : dtypes) {
    for (const int64_t specials : {0, 1, 7, 300}) {
      const at::Tensor t = RandomWithSpecials(torch_dtype, 4099, specials, 11 + specials);
      const at::Tensor bad = at::logical_not(at::isfinite(t));
      const NonfiniteValues found = CountNonfinite(BytesOf(t), dtype);
      EXPECT_EQ(found.count, bad.sum().item<int64_t>()) << c10::toString(torch_dtype) << ", " << specials;
      EXPECT_EQ(found.first, found.count == 0 ? -1 : at::nonzero(bad)[0][0].item<int64_t>());
      EXPECT_GE(found.count, specials == 0 ? 0 : 1);

      // Mapped tensors are only byte-aligned: the same values one byte off their alignment.
      std::vector<std::byte> shifted(t.nbytes() + 1);
      std::memcpy(shifted.data() + 1, t.data_ptr(), t.nbytes());
      const NonfiniteValues again = CountNonfinite(absl::MakeConstSpan(shifted).subspan(1), dtype);
      EXPECT_EQ(again.count, found.count);
      EXPECT_EQ(again.first, found.first);
    }
  }
  const std::vector<int64_t> integers = {-1, 0x7FF0000000000000, 0x7F800000};  // all-ones exponents, as integers
  EXPECT_EQ(CountNonfinite(absl::MakeConstSpan(reinterpret_cast<const std::byte*>(integers.data()), 24), DType::kI64)
                .count,
            0);
}

// A copy of the embedded tiny model whose weights `edit` may poison.
class NonfiniteModel : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::FixtureDir("AGORA_SCRATCH") / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const fs::path tiny = fs::path(AGORA_SOURCE_DIR) / "assets" / "tiny-llama";
    fs::copy_file(tiny / "config.json", dir_ / "config.json");
    fs::copy_file(tiny / "model.safetensors", dir_ / "model.safetensors");
  }
  // Sets element `index` of `tensor` (bf16 in the file) to `value`.
  void Poison(const std::string& tensor, int64_t index, double value) {
    auto file = SafetensorsFile::Open(dir_ / "model.safetensors");
    ASSERT_TRUE(file.ok()) << file.status();
    std::vector<at::Tensor> kept;
    std::vector<TensorToWrite> tensors;
    for (const TensorInfo& info : (*file)->tensors()) {
      at::Tensor t = TensorOverBytes((*file)->Data(info), info.shape, at::kBFloat16).clone();
      if (info.name == tensor) t.view(-1)[index] = value;
      kept.push_back(t);
      tensors.push_back({info.name, info.dtype, info.shape, BytesOf(kept.back())});
    }
    ASSERT_TRUE(WriteSafetensors(dir_ / "model.safetensors", tensors, {}).ok());
  }
  fs::path dir_;
};

TEST_F(NonfiniteModel, RefusedNamingFileTensorCountAndIndex) {
  Poison("model.layers.0.self_attn.v_proj.weight", 93, std::nan(""));
  Poison("model.layers.0.self_attn.v_proj.weight", 1000, -INFINITY);
  const auto loaded = LoadModel(dir_, {at::kFloat, at::kCPU});
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(loaded.status().message(),
              AllOf(HasSubstr((dir_ / "model.safetensors").string()),
                    HasSubstr("tensor 'model.layers.0.self_attn.v_proj.weight' holds 2 NaN or infinite values "
                              "(the first at flat index 93): refusing to load it"),
                    HasSubstr("model.on_nonfinite_weights=warn")));
}

TEST_F(NonfiniteModel, WarnLoadsAndListsEachTensor) {
  Poison("model.norm.weight", 5, INFINITY);
  Poison("lm_head.weight", 0, std::nan(""));
  const auto loaded = LoadModel(dir_, {at::kFloat, at::kCPU}, NonfiniteWeights::kWarn);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->nonfinite.size(), 2u);
  EXPECT_THAT(loaded->nonfinite, ::testing::UnorderedElementsAre(
                                     HasSubstr("tensor 'model.norm.weight' holds 1 NaN or infinite value (the first at "
                                               "flat index 5)"),
                                     HasSubstr("tensor 'lm_head.weight' holds 1 NaN or infinite value (the first at "
                                               "flat index 0)")));
  EXPECT_TRUE(std::isinf(loaded->model->model->norm->weight[5].item<float>()));
  EXPECT_EQ(at::isfinite(loaded->model->model->norm->weight).logical_not().sum().item<int64_t>(), 1);
}

TEST_F(NonfiniteModel, CleanModelLoadsWithNothingListed) {
  const auto loaded = LoadModel(dir_, {at::kFloat, at::kCPU}, NonfiniteWeights::kWarn);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->nonfinite.empty());
}

// Adapters and optimizer state (LoadTensors) have no policy: a NaN there is refused.
TEST_F(NonfiniteModel, TrainingStateWithNaNIsRefused) {
  at::Tensor moments = at::randn({4, 8}, at::make_generator<at::CPUGeneratorImpl>(5));
  moments[3][2] = std::nan("");
  const fs::path path = dir_ / "optimizer.safetensors";
  ASSERT_TRUE(SaveTensors(path, {{"exp_avg.model.norm.weight", moments}, {"step", at::ones({1})}}).ok());
  const auto tensors = LoadTensors(path);
  ASSERT_FALSE(tensors.ok());
  EXPECT_THAT(tensors.status().message(),
              HasSubstr(path.string() + ": tensor 'exp_avg.model.norm.weight' holds 1 NaN or infinite value (the "
                                        "first at flat index 26): refusing to load it"));
}

}  // namespace
}  // namespace agora
