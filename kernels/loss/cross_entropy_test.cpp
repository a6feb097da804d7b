// The CUDA kernels of kernels/loss against float64 torch, on the CPU path's checks with GPU-sized shapes: bf16 and
// fp16 within 1e-2, fp32 within 1e-5. Skipped loudly without a GPU.
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "kernels/loss/cross_entropy.h"
#include "kernels/loss/cross_entropy_test_reference.h"

namespace agora::loss::testing {
namespace {

// Rows that are not a multiple of anything, a vocabulary with a ragged last tile, and the auto tile width.
std::vector<Case> GpuCases() {
  std::vector<Case> cases;
  cases.push_back({1037, 256, 5003, 0.25, {.vocab_tile = 1024}});
  cases.push_back({515, 128, 3001, 0.3, {.label_smoothing = 0.1, .z_loss = 1e-3, .vocab_tile = 640}});
  cases.push_back({2049, 64, 4099, 0.2, {.tile_bytes = 2049 * 4 * 1024}});  // auto width 1024
  cases.push_back({333, 128, 32000, 0.25, {}});                             // one tile (the default budget)
  return cases;
}

TEST(LinearCrossEntropyGpu, MatchesFloat64TorchInEveryDtype) {
  AGORA_SKIP_WITHOUT_CUDA();
  uint64_t seed = 100;
  for (at::ScalarType dtype : {at::kBFloat16, at::kHalf, at::kFloat}) {
    for (const Case& c : GpuCases()) {
      const Inputs in = RandomInputs(c, dtype, at::kCUDA, seed++);
      const Results got = RunLinear(in, c.options);
      EXPECT_EQ(got.grad_weight.scalar_type(), dtype);
      EXPECT_EQ(got.grad_hidden.scalar_type(), dtype);
      ExpectClose(got, Float64Reference(in, c.options), dtype == at::kFloat ? 1e-5 : 1e-2,
                  Describe(c) + " " + c10::toString(dtype));
    }
  }
}

TEST(LinearCrossEntropyGpu, AllIgnoredRowsAndFrozenHead) {
  AGORA_SKIP_WITHOUT_CUDA();
  const Case c{777, 64, 2000, 1.0, {.vocab_tile = 512}};
  const Inputs in = RandomInputs(c, at::kBFloat16, at::kCUDA, 7);
  const Results got = RunLinear(in, c.options);
  EXPECT_EQ(got.loss.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(got.grad_hidden.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(got.grad_weight.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(MeanOverTargets(got.loss, in.targets).item<double>(), 0.0);

  const Case d{777, 64, 2000, 0.25, {.vocab_tile = 512}};
  Inputs frozen = RandomInputs(d, at::kBFloat16, at::kCUDA, 8);
  frozen.g_logprob.zero_();
  const at::Tensor h = frozen.hidden.detach().requires_grad_();
  (LinearCrossEntropy(h, frozen.weight, frozen.targets, d.options).loss * frozen.g_loss).sum().backward();
  EXPECT_LE(RelativeError(h.grad(), Float64Reference(frozen, d.options).grad_hidden), 1e-2);
  EXPECT_FALSE(frozen.weight.grad().defined());
}

TEST(CrossEntropyGpu, OverLogitsMatchesFloat64TorchInEveryDtype) {
  AGORA_SKIP_WITHOUT_CUDA();
  for (at::ScalarType dtype : {at::kBFloat16, at::kHalf, at::kFloat}) {
    for (bool in_place : {false, true}) {
      for (const Case& c : GpuCases()) {
        Inputs in = RandomInputs(c, dtype, at::kCUDA, 300);
        in.g_logprob.zero_();
        // The logits as the kernel sees them (rounded to dtype), and the reference from those same logits.
        const at::Tensor logits = at::mm(in.hidden.to(at::kFloat), in.weight.to(at::kFloat).t()).to(dtype);
        const at::Tensor x = logits.detach().clone().requires_grad_();
        const at::Tensor x_work = x.mul(1);  // a non-leaf the in-place variant may overwrite
        const TokenLosses out = CrossEntropy(x_work, in.targets, c.options, in_place);
        (out.loss * in.g_loss).sum().backward();
        const at::Tensor x64 = logits.cpu().to(at::kDouble).requires_grad_();
        const at::Tensor t = in.targets.cpu();
        const at::Tensor valid = t.ne(kIgnoreLabel);
        const at::Tensor lse = x64.logsumexp(1);
        const at::Tensor want = at::cross_entropy_loss(x64, t, {}, at::Reduction::None, kIgnoreLabel,
                                                       c.options.label_smoothing) +
                                c.options.z_loss * at::where(valid, lse * lse, 0);
        (want * in.g_loss.cpu().to(at::kDouble)).sum().backward();
        const double tolerance = dtype == at::kFloat ? 1e-5 : 1e-2;
        const std::string what = Describe(c) + " " + c10::toString(dtype) + (in_place ? " in place" : "");
        EXPECT_LE(RelativeError(out.loss, want.detach()), tolerance) << what;
        EXPECT_LE(RelativeError(out.lse, at::where(valid, lse, 0).detach()), tolerance) << what;
        EXPECT_LE(RelativeError(x.grad(), x64.grad()), tolerance) << what;
      }
    }
  }
}

}  // namespace
}  // namespace agora::loss::testing
