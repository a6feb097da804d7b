// kernels/quant's ATen path against bitsandbytes 0.50.2 (tests/oracle/make_nf4_fixtures.py runs it on random weights
// on the CPU): the same code books, the same NF4 codes, absmax codes, absmax2 and offset bit for bit, the same
// dequantised values bit for bit, the same LLM.int8() rows; then, on other random weights, the error bound the
// algorithm promises against float64, the bytes per parameter, and clear errors for what it refuses.
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kernels/quant/nf4.h"
#include "kernels/quant/nf4_binding.h"
#include "kernels/quant/nf4_test_support.h"
#include "tests/test_util.h"

namespace agora::quant::testing {
namespace {

using ::agora::testing::RelativeError;
using ::testing::HasSubstr;

const std::map<std::string, at::Tensor>& Fixture() {
  static const auto* tensors = new std::map<std::string, at::Tensor>(
      agora::testing::ReadTensors(agora::testing::FixtureDir("AGORA_NF4_FIXTURES") / "nf4.safetensors"));
  return *tensors;
}

const at::Tensor& Get(const std::string& key) {
  static const at::Tensor missing;
  const auto it = Fixture().find(key);
  EXPECT_NE(it, Fixture().end()) << "the oracle wrote no " << key;
  return it == Fixture().end() ? missing : it->second;
}

// The oracle's cases: every "<case>.weight".
std::vector<std::string> Cases() {
  std::vector<std::string> cases;
  const std::string suffix = ".weight";
  for (const auto& [key, tensor] : Fixture()) {
    if (key.size() > suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0) {
      cases.push_back(key.substr(0, key.size() - suffix.size()));
    }
  }
  return cases;
}

// Integer codes: the oracle stores them as int64.
bool SameCodes(const at::Tensor& ours, const at::Tensor& oracle) { return at::equal(ours.to(at::kLong), oracle); }

// Exactly equal, bit for bit (NaN never occurs here).
bool SameBits(const at::Tensor& ours, const at::Tensor& oracle) {
  return ours.scalar_type() == oracle.scalar_type() && at::equal(ours, oracle);
}

TEST(Nf4Cpu, CodeBooksAreBitsandbytesOwn) {
  EXPECT_TRUE(SameBits(at::from_blob(const_cast<float*>(kNf4Code), {16}, at::kFloat), Get("nf4_code")));
  EXPECT_TRUE(SameBits(at::from_blob(const_cast<float*>(kDynamicMap), {256}, at::kFloat), Get("dynamic_map")));
}

TEST(Nf4Cpu, QuantisesAsBitsandbytesBitForBit) {
  const std::vector<std::string> cases = Cases();
  ASSERT_EQ(cases.size(), 6u);
  for (const std::string& c : cases) {
    SCOPED_TRACE(c);
    const at::Tensor& weight = Get(c + ".weight");
    const absl::StatusOr<Nf4Weight> q = QuantizeNf4(weight, c);
    ASSERT_TRUE(q.ok()) << q.status();
    EXPECT_EQ(q->shape, weight.sizes().vec());
    EXPECT_TRUE(SameCodes(q->packed, Get(c + ".packed")));
    EXPECT_TRUE(SameCodes(q->absmax_codes, Get(c + ".absmax_codes")));
    EXPECT_TRUE(SameBits(q->absmax2, Get(c + ".absmax2")));
    EXPECT_EQ(std::memcmp(&q->offset, Get(c + ".offset").data_ptr<float>(), sizeof(float)), 0)
        << q->offset << " vs " << Get(c + ".offset").item<float>();

    const absl::StatusOr<at::Tensor> f32 = DequantizeNf4(*q, at::kFloat, c);
    ASSERT_TRUE(f32.ok()) << f32.status();
    EXPECT_TRUE(SameBits(*f32, Get(c + ".dequant")));
    const absl::StatusOr<at::Tensor> own_dtype = DequantizeNf4(*q, weight.scalar_type(), c);
    ASSERT_TRUE(own_dtype.ok()) << own_dtype.status();
    EXPECT_TRUE(SameBits(*own_dtype, Get(c + ".dequant_dtype")));
  }
}

// bitsandbytes' native CPU library picks some absmax codes one step away from the nearest (NOTES.md); given its
// state, the dequantisation is still the same arithmetic, bit for bit.
TEST(Nf4Cpu, DequantisesBitsandbytesNativeStateBitForBit) {
  for (const std::string& c : Cases()) {
    SCOPED_TRACE(c);
    Nf4Weight w;
    w.packed = Get(c + ".packed").to(at::kByte);
    w.absmax_codes = Get(c + ".absmax_codes_native").to(at::kByte);
    w.absmax2 = Get(c + ".absmax2");
    w.offset = Get(c + ".offset").item<float>();
    w.shape = Get(c + ".weight").sizes().vec();
    const absl::StatusOr<at::Tensor> f32 = DequantizeNf4(w, at::kFloat, c);
    ASSERT_TRUE(f32.ok()) << f32.status();
    EXPECT_TRUE(SameBits(*f32, Get(c + ".dequant_native")));
    // The two code choices differ by at most one step of the dynamic map, on few blocks.
    const at::Tensor steps = (Get(c + ".absmax_codes") - Get(c + ".absmax_codes_native")).abs();
    EXPECT_LE(steps.max().item<int64_t>(), 1);
    EXPECT_LE(steps.to(at::kDouble).mean().item<double>(), 0.02);
  }
}

TEST(Nf4Cpu, Int8RowsAsBitsandbytesBitForBit) {
  int checked = 0;
  for (const std::string& c : Cases()) {
    if (Get(c + ".weight").dim() != 2) continue;
    SCOPED_TRACE(c);
    const absl::StatusOr<Int8Weight> q = QuantizeInt8Rows(Get(c + ".weight"), c);
    ASSERT_TRUE(q.ok()) << q.status();
    EXPECT_TRUE(SameCodes(q->codes, Get(c + ".int8")));
    EXPECT_TRUE(SameBits(q->absmax, Get(c + ".int8_absmax")));
    const absl::StatusOr<at::Tensor> back = DequantizeInt8Rows(*q, at::kFloat, c);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(SameBits(*back, Get(c + ".int8_dequant")));
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

// The bound the algorithm promises, per element of block b (absmax A_b, dequantised A'_b) in 256-block c:
//   |w - w'| <= |w / A_b - code| A_b + |code| |A_b - A'_b| <= 0.15191 A_b + 0.00704 absmax2_c
// (half the widest NF4 gap, [-1, -0.6961928], and half the dynamic map's widest gap, 0.0140625 around 0.11, or
// its distance from -1 to its lowest entry), plus float32 rounding. Checked in float64 on shapes and dtypes the
// fixture does not have, with the typical error alongside.
TEST(Nf4Cpu, RoundTripStaysWithinTheAlgorithmsBound) {
  uint64_t seed = 100;
  for (const auto& [shape, dtype] : std::vector<std::pair<std::vector<int64_t>, at::ScalarType>>{
           {{512, 768}, at::kFloat}, {{344, 256}, at::kBFloat16}, {{33, 64}, at::kHalf}, {{1, 128}, at::kFloat}}) {
    const at::Tensor weight = RandomWeight(shape, dtype, seed++);
    SCOPED_TRACE(ShapeString(weight.sizes()) + " " + c10::toString(dtype));
    const absl::StatusOr<Nf4Weight> q = QuantizeNf4(weight);
    ASSERT_TRUE(q.ok()) << q.status();
    const at::Tensor w = weight.to(at::kDouble).reshape({-1, kNf4BlockSize});
    const at::Tensor back = DequantizeNf4(*q, at::kFloat).value().to(at::kDouble).reshape({-1, kNf4BlockSize});
    const int64_t blocks = w.size(0);
    const at::Tensor absmax = w.abs().amax(1, /*keepdim=*/true);
    const at::Tensor absmax2 =
        q->absmax2.to(at::kDouble).repeat_interleave(kAbsmaxBlockSize).narrow(0, 0, blocks).view({-1, 1});
    const at::Tensor bound = (0.15191 * absmax + 0.00704 * absmax2) * (1 + 1e-6);
    EXPECT_TRUE(((w - back).abs() <= bound).all().item<bool>())
        << "worst excess " << ((w - back).abs() - bound).max().item<double>();
    // The typical error on these weights (normal, with outliers that stretch their blocks' absmax): about an eighth
    // of their spread.
    const double rms = (w - back).pow(2).mean().sqrt().item<double>() / w.pow(2).mean().sqrt().item<double>();
    EXPECT_LT(rms, 0.16);
    EXPECT_GT(rms, 0.05);  // a quantiser that quantised nothing would pass the bound too
  }
}

// codes = round(w * 127 / absmax_row): |w - w'| <= absmax_row / 254 per element, up to float32 rounding.
TEST(Nf4Cpu, Int8RoundTripStaysWithinHalfAStep) {
  const at::Tensor weight = RandomWeight({96, 200}, at::kBFloat16, 7);
  const absl::StatusOr<Int8Weight> q = QuantizeInt8Rows(weight, "w");
  ASSERT_TRUE(q.ok()) << q.status();
  const at::Tensor w = weight.to(at::kDouble);
  const at::Tensor back = DequantizeInt8Rows(*q, at::kFloat).value().to(at::kDouble);
  const at::Tensor bound = w.abs().amax(1, /*keepdim=*/true) / 254 * (1 + 1e-5);
  EXPECT_TRUE(((w - back).abs() <= bound).all().item<bool>());
  EXPECT_EQ(q->codes.abs().amax(1).min().item<int>(), 127);  // every row uses the full range
  EXPECT_EQ(q->bytes(), 96 * 200 + 96 * 4);
}

TEST(Nf4Cpu, BytesPerParameter) {
  // One Llama-2-7B q_proj has 4096 x 4096; a quarter of it has the same bytes per parameter up to the fixed offset.
  const int64_t rows = 1024, cols = 4096, n = rows * cols;
  const absl::StatusOr<Nf4Weight> q = QuantizeNf4(RandomWeight({rows, cols}, at::kBFloat16, 3));
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->bytes(), n / 2 + n / 64 + 4 * (n / 64 / 256) + 4);
  const double per_parameter = static_cast<double>(q->bytes()) / static_cast<double>(n);
  EXPECT_NEAR(per_parameter, 0.5 + 1.0 / 64 + 4.0 / (64 * 256), 1e-6);  // 0.51587
}

TEST(Nf4Cpu, LinearMatchesFloat64) {
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    SCOPED_TRACE(c10::toString(dtype));
    const absl::StatusOr<Nf4Weight> q = QuantizeNf4(RandomWeight({96, 320}, at::kBFloat16, 11));
    ASSERT_TRUE(q.ok()) << q.status();
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(12);
    const at::Tensor x = at::randn({2, 3, 320}, gen).to(dtype);
    const absl::StatusOr<at::Tensor> y = LinearNf4(x, *q, "w");
    ASSERT_TRUE(y.ok()) << y.status();
    EXPECT_EQ(y->sizes(), (std::vector<int64_t>{2, 3, 96}));
    EXPECT_EQ(y->scalar_type(), dtype);
    EXPECT_LE(RelativeError(y->reshape({6, 96}), LinearFloat64(x.reshape({6, 320}), *q)), dtype == at::kFloat ? 1e-5 : 1e-2);
    // Off the GPU the binding is the ATen path itself.
    const absl::StatusOr<at::Tensor> z = Nf4Gemv(x, *q, "w");
    ASSERT_TRUE(z.ok()) << z.status();
    EXPECT_TRUE(at::equal(*z, *y));
    EXPECT_TRUE(at::equal(Nf4Dequantize(*q, dtype).value(), DequantizeNf4(*q, dtype).value()));
  }
}

TEST(Nf4Cpu, RefusalsNameTheWeightAndItsShape) {
  const auto error = [](const auto& result) { return std::string(result.status().message()); };
  const at::Tensor odd = RandomWeight({3, 100}, at::kFloat, 1);
  EXPECT_THAT(error(QuantizeNf4(odd, "model.layers.0.mlp.down_proj.weight")),
              AllOf(HasSubstr("model.layers.0.mlp.down_proj.weight"), HasSubstr("[3, 100]"), HasSubstr("300 elements"),
                    HasSubstr("multiple of 64")));
  EXPECT_THAT(error(QuantizeNf4(at::ones({64, 64}, at::kLong), "w")), HasSubstr("got Long"));
  at::Tensor nan = RandomWeight({64, 64}, at::kFloat, 2);
  nan[5][7] = NAN;
  EXPECT_THAT(error(QuantizeNf4(nan, "w")), AllOf(HasSubstr("[64, 64]"), HasSubstr("NaN")));
  EXPECT_THAT(error(QuantizeInt8Rows(RandomWeight({64}, at::kFloat, 3), "w")), HasSubstr("2-D"));

  Nf4Weight broken = QuantizeNf4(RandomWeight({128, 256}, at::kFloat, 4)).value();
  broken.absmax2 = broken.absmax2.narrow(0, 0, 1);
  EXPECT_THAT(error(DequantizeNf4(broken, at::kFloat, "w")), AllOf(HasSubstr("absmax2"), HasSubstr("[2]")));
  Nf4Weight wrong_shape = QuantizeNf4(RandomWeight({128, 256}, at::kFloat, 4)).value();
  wrong_shape.shape = {128, 128};
  EXPECT_THAT(error(DequantizeNf4(wrong_shape, at::kFloat, "w")), HasSubstr("packed must be [8192]"));

  const Nf4Weight q = QuantizeNf4(RandomWeight({128, 256}, at::kFloat, 5)).value();
  EXPECT_THAT(error(DequantizeNf4(q, at::kInt, "w")), HasSubstr("got Int"));
  EXPECT_THAT(error(LinearNf4(at::ones({4, 255}), q, "w")), AllOf(HasSubstr("[128, 256]"), HasSubstr("[4, 255]")));
  EXPECT_THAT(error(Nf4Gemv(at::ones({4, 256}, at::kLong), q, "w")), HasSubstr("got Long"));
}

}  // namespace
}  // namespace agora::quant::testing
