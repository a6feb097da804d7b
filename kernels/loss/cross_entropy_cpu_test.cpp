// The CPU path of kernels/loss (cross_entropy_cpu.cpp: the kernels' tiling in ATen ops) against float64 torch on
// random data: the vocabulary-tiled LinearCrossEntropy (online log-sum-exp forward, per-tile recomputing backward)
// and the lab's one-pass CrossEntropy over logits, fp32 within 1e-5 and bf16/fp16 within 1e-2: loss, log-probs,
// lse, grad_hidden, grad_weight, with ignored tokens, all-ignored batches, ragged last tiles, label smoothing and
// z-loss; bad inputs give clear errors.
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kernels/loss/cross_entropy.h"
#include "kernels/loss/cross_entropy_test_reference.h"

namespace agora::loss::testing {
namespace {

using ::testing::HasSubstr;

TEST(LinearCrossEntropyCpu, Float32MatchesFloat64Torch) {
  uint64_t seed = 1;
  for (const Case& c : Cases()) {
    const Inputs in = RandomInputs(c, at::kFloat, at::kCPU, seed++);
    ExpectClose(RunLinear(in, c.options), Float64Reference(in, c.options), 1e-5, Describe(c));
  }
}

TEST(LinearCrossEntropyCpu, BFloat16MatchesFloat64Torch) {
  const Case c{61, 32, 700, 0.25, {.label_smoothing = 0.05, .z_loss = 1e-4, .vocab_tile = 256}};
  const Inputs in = RandomInputs(c, at::kBFloat16, at::kCPU, 11);
  const Results got = RunLinear(in, c.options);
  EXPECT_EQ(got.grad_weight.scalar_type(), at::kBFloat16);
  ExpectClose(got, Float64Reference(in, c.options), 1e-2, Describe(c));
}

// A mean over N x V = 2048 x 32768 nearly uniform logits makes the gradient tile's entries about 1 / (N V) = 1.5e-8,
// under half of fp16's smallest subnormal (6e-8): written unscaled they round to zero, and every word that no row
// targets gets no gradient. The CPU path writes the fp16 tile exactly as the kernels do, so this checks the scaling
// that prevents it, against float64 torch's mean cross-entropy.
TEST(LinearCrossEntropyCpu, Float16MeanOverManyLogitsKeepsTheUntargetedWordsGradient) {
  constexpr int64_t kRows = 2048, kDim = 32, kVocab = 32768;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(21);
  const at::Tensor hidden = at::randn({kRows, kDim}, gen).to(at::kHalf);
  const at::Tensor weight = (at::randn({kVocab, kDim}, gen) * (0.5 / std::sqrt(double{kDim}))).to(at::kHalf);
  const at::Tensor targets = at::randint(0, kVocab, {kRows}, gen, at::kLong);
  const at::Tensor h = hidden.detach().requires_grad_(), w = weight.detach().requires_grad_();
  MeanOverTargets(LinearCrossEntropy(h, w, targets, {.vocab_tile = 8192}).loss, targets).backward();

  const at::Tensor h64 = hidden.to(at::kDouble).requires_grad_(), w64 = weight.to(at::kDouble).requires_grad_();
  at::cross_entropy_loss(at::mm(h64, w64.t()), targets).backward();
  const at::Tensor targeted = at::zeros({kVocab}, at::kBool).index_fill_(0, targets, true);
  const at::Tensor untargeted = targeted.logical_not().nonzero().squeeze(1);
  ASSERT_GT(untargeted.numel(), kVocab / 2);
  EXPECT_LE(RelativeError(w.grad().index_select(0, untargeted), w64.grad().index_select(0, untargeted)), 1e-2);
  EXPECT_LE(RelativeError(w.grad(), w64.grad()), 1e-2);
  EXPECT_LE(RelativeError(h.grad(), h64.grad()), 1e-2);
}

TEST(LinearCrossEntropyCpu, IgnoredRowsGiveZerosAndAllIgnoredMeanIsZero) {
  Case c{20, 16, 300, 1.0, {.vocab_tile = 128}};  // every target ignored
  const Inputs in = RandomInputs(c, at::kFloat, at::kCPU, 5);
  const Results got = RunLinear(in, c.options);
  EXPECT_EQ(got.loss.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(got.logprob.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(got.grad_hidden.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(got.grad_weight.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(MeanOverTargets(got.loss, in.targets).item<double>(), 0.0) << "not NaN";
}

TEST(LinearCrossEntropyCpu, MeanOverTargetsIsTorchsMeanReduction) {
  const Case c{50, 24, 333, 0.4, {.vocab_tile = 100}};
  const Inputs in = RandomInputs(c, at::kFloat, at::kCPU, 6);
  const at::Tensor h = in.hidden.detach().requires_grad_(), w = in.weight.detach().requires_grad_();
  MeanOverTargets(LinearCrossEntropy(h, w, in.targets, c.options).loss, in.targets).backward();
  const at::Tensor h64 = in.hidden.to(at::kDouble).requires_grad_(), w64 = in.weight.to(at::kDouble).requires_grad_();
  const at::Tensor want = at::cross_entropy_loss(at::mm(h64, w64.t()), in.targets, {}, at::Reduction::Mean, kIgnoreLabel);
  want.backward();
  EXPECT_LE(RelativeError(h.grad(), h64.grad()), 1e-5);
  EXPECT_LE(RelativeError(w.grad(), w64.grad()), 1e-5);
}

TEST(LinearCrossEntropyCpu, FrozenHeadGetsNoGradientAndHiddenStillDoes) {
  const Case c{40, 32, 500, 0.2, {.vocab_tile = 128}};
  const Inputs in = RandomInputs(c, at::kFloat, at::kCPU, 7);
  const at::Tensor h = in.hidden.detach().requires_grad_();
  (LinearCrossEntropy(h, in.weight, in.targets, c.options).loss * in.g_loss).sum().backward();
  Inputs no_logprob = in;
  no_logprob.g_logprob = at::zeros_like(in.g_logprob);
  EXPECT_LE(RelativeError(h.grad(), Float64Reference(no_logprob, c.options).grad_hidden), 1e-5);
  EXPECT_FALSE(in.weight.grad().defined());
}

TEST(CrossEntropyCpu, OverLogitsMatchesFloat64TorchInPlaceOrNot) {
  for (bool in_place : {false, true}) {
    for (const Case& c : Cases()) {
      const Inputs in = RandomInputs(c, at::kFloat, at::kCPU, 21);
      const at::Tensor h = in.hidden.detach().requires_grad_(), w = in.weight.detach().requires_grad_();
      const TokenLosses out = CrossEntropy(at::mm(h, w.t()), in.targets, c.options, in_place);
      (out.loss * in.g_loss).sum().backward();
      Inputs no_logprob = in;
      no_logprob.g_logprob = at::zeros_like(in.g_logprob);
      const Results want = Float64Reference(no_logprob, c.options);
      const std::string what = Describe(c) + (in_place ? " in place" : "");
      EXPECT_LE(RelativeError(out.loss, want.loss), 1e-5) << what;
      EXPECT_LE(RelativeError(out.logprob, Float64Reference(in, c.options).logprob), 1e-5) << what;
      EXPECT_LE(RelativeError(out.lse, want.lse), 1e-5) << what;
      EXPECT_LE(RelativeError(h.grad(), want.grad_hidden), 1e-5) << what;
      EXPECT_LE(RelativeError(w.grad(), want.grad_weight), 1e-5) << what;
    }
  }
}

TEST(CrossEntropyCpu, InPlaceOverLogitsAnotherNodeSavedFailsLoudly) {
  const at::Tensor x = at::randn({4, 10}).requires_grad_();
  const at::Tensor logits = x.exp();  // exp saves its result for backward
  const at::Tensor targets = at::tensor(std::vector<int64_t>{1, 2, kIgnoreLabel, 9});
  const at::Tensor l = CrossEntropy(logits, targets, {}, /*in_place=*/true).loss.sum();
  EXPECT_THAT([&] { l.backward(); }, ::testing::ThrowsMessage<c10::Error>(HasSubstr("modified by an inplace operation")));
}

TEST(LossInputs, BadInputsGiveClearErrors) {
  const at::Tensor h = at::randn({3, 8}), w = at::randn({10, 8});
  const at::Tensor ok = at::tensor(std::vector<int64_t>{1, kIgnoreLabel, 9});
  auto error = [](auto&& f) {
    try {
      f();
    } catch (const c10::Error& e) {
      return std::string(e.what_without_backtrace());
    }
    return std::string("no error");
  };
  EXPECT_THAT(error([&] { LinearCrossEntropy(h, w, at::tensor(std::vector<int64_t>{1, 10, 2})); }),
              HasSubstr("target 10 of row 1 is outside the vocabulary [0, 10)"));
  EXPECT_THAT(error([&] { LinearCrossEntropy(h, w, at::tensor(std::vector<int64_t>{-1, 0, 2})); }),
              HasSubstr("target -1 of row 0"));
  EXPECT_THAT(error([&] { LinearCrossEntropy(h, w.to(at::kBFloat16), ok); }),
              HasSubstr("weight is BFloat16 but hidden is Float"));
  EXPECT_THAT(error([&] { LinearCrossEntropy(h, at::randn({10, 7}), ok); }),
              HasSubstr("expected hidden [N, D] and weight [V, D]"));
  EXPECT_THAT(error([&] { LinearCrossEntropy(h, w, ok.to(at::kInt)); }), HasSubstr("targets must be int64"));
  EXPECT_THAT(error([&] { LinearCrossEntropy(h, w, ok.slice(0, 0, 2)); }), HasSubstr("targets must be [3]"));
  EXPECT_THAT(error([&] { LinearCrossEntropy(h, w, ok, {.label_smoothing = 1.5}); }),
              HasSubstr("label_smoothing must be in [0, 1]"));
  EXPECT_THAT(error([&] { CrossEntropy(at::randn({3, 10}).t(), ok, {}, true); }),
              HasSubstr("in_place needs logits with contiguous rows"));
}

}  // namespace
}  // namespace agora::loss::testing
