// kernels/quant's CUDA kernels against its ATen path (itself bit for bit bitsandbytes', nf4_cpu_test.cpp): the
// dequantisation bit for bit in every output dtype, the fused GEMV against float64 within the bf16/fp32 bounds, its
// fallbacks, and quantisation run by ATen on the GPU. Skipped loudly without a GPU.
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

Nf4Weight ToDevice(const Nf4Weight& w, const at::Device& device) {
  Nf4Weight out = w;
  out.packed = w.packed.to(device);
  out.absmax_codes = w.absmax_codes.to(device);
  out.absmax2 = w.absmax2.to(device);
  return out;
}

// Llama-2-7B's q_proj and a quarter of its down_proj ([4096, 11008] has 11008 % 1024 = 768: a partial tile), a
// block count that is no multiple of 256, and the tiny model's down_proj (rows of 172: blocks straddle rows).
const std::vector<std::vector<int64_t>> kShapes = {{4096, 4096}, {1024, 2752}, {96, 320}, {64, 172}};

TEST(Nf4Cuda, DequantiseMatchesTheAtenPathBitForBit) {
  AGORA_SKIP_WITHOUT_CUDA();
  uint64_t seed = 40;
  for (const std::vector<int64_t>& shape : kShapes) {
    const Nf4Weight cpu = QuantizeNf4(RandomWeight(shape, at::kBFloat16, seed++)).value();
    const Nf4Weight gpu = ToDevice(cpu, at::kCUDA);
    for (at::ScalarType dtype : {at::kBFloat16, at::kHalf, at::kFloat}) {
      SCOPED_TRACE(ShapeString(shape) + " " + c10::toString(dtype));
      const absl::StatusOr<at::Tensor> got = Nf4Dequantize(gpu, dtype);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_TRUE(got->is_cuda());
      EXPECT_TRUE(at::equal(got->cpu(), DequantizeNf4(cpu, dtype).value()));
    }
  }
}

// A packed tensor that starts one byte into its buffer is copied to an aligned one, not read misaligned.
TEST(Nf4Cuda, DequantiseAcceptsAMisalignedPackedView) {
  AGORA_SKIP_WITHOUT_CUDA();
  const Nf4Weight cpu = QuantizeNf4(RandomWeight({128, 256}, at::kFloat, 50)).value();
  Nf4Weight gpu = ToDevice(cpu, at::kCUDA);
  const at::Tensor buffer = at::empty({cpu.packed.numel() + 1}, gpu.packed.options());
  buffer.narrow(0, 1, cpu.packed.numel()).copy_(gpu.packed);
  gpu.packed = buffer.narrow(0, 1, cpu.packed.numel());
  EXPECT_TRUE(at::equal(Nf4Dequantize(gpu, at::kFloat).value().cpu(), DequantizeNf4(cpu, at::kFloat).value()));
}

TEST(Nf4Cuda, GemvMatchesFloat64) {
  AGORA_SKIP_WITHOUT_CUDA();
  uint64_t seed = 60;
  for (const std::vector<int64_t>& shape : {kShapes[0], kShapes[1], kShapes[2]}) {
    const Nf4Weight cpu = QuantizeNf4(RandomWeight(shape, at::kBFloat16, seed++)).value();
    const Nf4Weight gpu = ToDevice(cpu, at::kCUDA);
    for (at::ScalarType dtype : {at::kBFloat16, at::kHalf, at::kFloat}) {
      for (int64_t rows : {1, 3, 8}) {
        SCOPED_TRACE(ShapeString(shape) + " " + c10::toString(dtype) + " rows " + std::to_string(rows));
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed++);
        const at::Tensor x = at::randn({rows, shape[1]}, gen).to(dtype);
        const absl::StatusOr<at::Tensor> y = Nf4Gemv(x.cuda(), gpu);
        ASSERT_TRUE(y.ok()) << y.status();
        EXPECT_EQ(y->sizes(), (std::vector<int64_t>{rows, shape[0]}));
        EXPECT_EQ(y->scalar_type(), dtype);
        EXPECT_LE(RelativeError(*y, LinearFloat64(x, cpu)), dtype == at::kFloat ? 1e-5 : 1e-2);
      }
    }
  }
}

// More rows than the fused kernel takes, rows that do not divide into its 8-element words, and leading dimensions:
// the dequantise + matmul fallback, same results.
TEST(Nf4Cuda, GemvFallbacksAndLeadingDimensions) {
  AGORA_SKIP_WITHOUT_CUDA();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(70);
  const Nf4Weight wide = QuantizeNf4(RandomWeight({256, 512}, at::kBFloat16, 71)).value();
  const Nf4Weight tiny = QuantizeNf4(RandomWeight({64, 172}, at::kBFloat16, 72)).value();
  struct Case {
    const Nf4Weight& weight;
    std::vector<int64_t> x_shape;
  };
  for (const Case& c : {Case{wide, {17, 512}}, Case{wide, {2, 3, 512}}, Case{tiny, {1, 172}}, Case{tiny, {2, 2, 172}}}) {
    SCOPED_TRACE(ShapeString(c.x_shape));
    const at::Tensor x = at::randn(c.x_shape, gen).to(at::kBFloat16);
    const absl::StatusOr<at::Tensor> y = Nf4Gemv(x.cuda(), ToDevice(c.weight, at::kCUDA));
    ASSERT_TRUE(y.ok()) << y.status();
    std::vector<int64_t> y_shape = c.x_shape;
    y_shape.back() = c.weight.shape[0];
    EXPECT_EQ(y->sizes(), y_shape);
    EXPECT_LE(RelativeError(y->reshape({-1, c.weight.shape[0]}), LinearFloat64(x.reshape({-1, c.weight.shape[1]}), c.weight)),
              1e-2);
  }
}

// QuantizeNf4 is ATen ops, so it runs on the GPU too: the NF4 codes are the same (a block's absmax and the scaled
// values are exact or correctly rounded on both); the mean behind the offset may round differently, moving a few
// absmax codes one step.
TEST(Nf4Cuda, QuantiseOnTheGpuAgreesWithTheCpu) {
  AGORA_SKIP_WITHOUT_CUDA();
  const at::Tensor weight = RandomWeight({1024, 2752}, at::kBFloat16, 80);
  const Nf4Weight cpu = QuantizeNf4(weight).value();
  const absl::StatusOr<Nf4Weight> gpu = QuantizeNf4(weight.cuda());
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EXPECT_TRUE(gpu->packed.is_cuda());
  EXPECT_TRUE(at::equal(gpu->packed.cpu(), cpu.packed));
  EXPECT_NEAR(gpu->offset, cpu.offset, 1e-6 * std::abs(cpu.offset));
  EXPECT_LE(RelativeError(Nf4Dequantize(*gpu, at::kFloat).value(), DequantizeNf4(cpu, at::kFloat).value()), 1e-5);
}

TEST(Nf4Cuda, RefusesXOnAnotherDevice) {
  AGORA_SKIP_WITHOUT_CUDA();
  const Nf4Weight gpu = ToDevice(QuantizeNf4(RandomWeight({64, 64}, at::kFloat, 90)).value(), at::kCUDA);
  const absl::StatusOr<at::Tensor> y = Nf4Gemv(at::ones({1, 64}), gpu, "model.layers.3.self_attn.q_proj.weight");
  ASSERT_FALSE(y.ok());
  EXPECT_THAT(std::string(y.status().message()),
              AllOf(::testing::HasSubstr("q_proj"), ::testing::HasSubstr("x is on cpu")));
}

}  // namespace
}  // namespace agora::quant::testing
