// The cross-entropy losses of kernels/loss against float64 torch on random data (label "loss"):
//  - CPU: the vocabulary-tiled LinearCrossEntropy (online log-sum-exp forward, per-tile recomputing backward) and
//    the one-pass CrossEntropy over logits, fp32 within 1e-5 and bf16 within 1e-2 of float64 torch
//    (mm + cross_entropy / log_softmax and autograd): loss, log-probs, lse, grad_hidden, grad_weight, with ignored
//    tokens, all-ignored batches, ragged last tiles, label smoothing and z-loss; bad inputs give clear errors;
//    the trainer's PackedTokenNll gives the same NLL and gradients with the fused loss as with torch's.
//  - GPU (skipped loudly without one): the CUDA kernels on the same checks, bf16/fp16 within 1e-2, fp32 1e-5.
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "data/packing.h"
#include "kernels/loss/cross_entropy.h"
#include "models/causal_lm_loss.h"
#include "models/checkpoint.h"
#include "tests/test_util.h"
#include "trainer/objectives/sft.h"
#include "trainer/recipe.h"

namespace agora {
namespace {

namespace fs = std::filesystem;
using agora::testing::RelativeError;
using ::testing::HasSubstr;
using loss::CrossEntropyOptions;

struct Case {
  int64_t rows, dim, vocab;
  double ignored_fraction = 0.25;
  CrossEntropyOptions options;
};

struct Inputs {
  at::Tensor hidden, weight, targets, g_loss, g_logprob;
};

// Random hidden states and head (scaled so logits spread over a few units), targets with a random share
// ignored, random upstream gradients for both differentiable outputs.
Inputs RandomInputs(const Case& c, at::ScalarType dtype, const at::Device& device, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  Inputs in;
  in.hidden = at::randn({c.rows, c.dim}, gen, at::kFloat);
  in.weight = at::randn({c.vocab, c.dim}, gen, at::kFloat) * (2.0 / std::sqrt(static_cast<double>(c.dim)));
  in.targets = at::randint(0, c.vocab, {c.rows}, gen, at::kLong);
  in.targets.masked_fill_(at::rand({c.rows}, gen) < c.ignored_fraction, kIgnoreLabel);
  in.g_loss = at::randn({c.rows}, gen, at::kFloat);
  in.g_logprob = at::randn({c.rows}, gen, at::kFloat);
  in.hidden = in.hidden.to(device, dtype);
  in.weight = in.weight.to(device, dtype);
  for (at::Tensor* t : {&in.targets, &in.g_loss, &in.g_logprob}) *t = t->to(device);
  return in;
}

struct Results {
  at::Tensor loss, logprob, lse, grad_hidden, grad_weight;
};

// float64 torch: logits by mm, loss by cross_entropy (its label smoothing), log-probs by log_softmax, gradients by
// autograd, all on the CPU from the (already rounded) inputs.
Results Float64Reference(const Inputs& in, const CrossEntropyOptions& o) {
  const at::Tensor h = in.hidden.to(at::kCPU, at::kDouble).detach().requires_grad_();
  const at::Tensor w = in.weight.to(at::kCPU, at::kDouble).detach().requires_grad_();
  const at::Tensor targets = in.targets.cpu();
  const at::Tensor valid = targets.ne(kIgnoreLabel);
  const at::Tensor logits = at::mm(h, w.t());
  const at::Tensor lse = logits.logsumexp(1);
  const at::Tensor loss = at::cross_entropy_loss(logits, targets, {}, at::Reduction::None, kIgnoreLabel,
                                                 o.label_smoothing) +
                          o.z_loss * at::where(valid, lse * lse, 0);
  const at::Tensor logprob =
      at::where(valid, logits.log_softmax(1).gather(1, targets.clamp_min(0).unsqueeze(1)).squeeze(1), 0);
  (loss * in.g_loss.cpu().to(at::kDouble) + logprob * in.g_logprob.cpu().to(at::kDouble)).sum().backward();
  return {loss.detach(), logprob.detach(), at::where(valid, lse, 0).detach(), h.grad(), w.grad()};
}

Results RunLinear(const Inputs& in, const CrossEntropyOptions& o) {
  const at::Tensor h = in.hidden.detach().requires_grad_();
  const at::Tensor w = in.weight.detach().requires_grad_();
  const loss::TokenLosses out = loss::LinearCrossEntropy(h, w, in.targets, o);
  (out.loss * in.g_loss + out.logprob * in.g_logprob).sum().backward();
  return {out.loss, out.logprob, out.lse, h.grad(), w.grad()};
}

void ExpectClose(const Results& got, const Results& want, double tolerance, const std::string& what) {
  EXPECT_LE(RelativeError(got.loss, want.loss), tolerance) << what << ": loss";
  EXPECT_LE(RelativeError(got.logprob, want.logprob), tolerance) << what << ": logprob";
  EXPECT_LE(RelativeError(got.lse, want.lse), tolerance) << what << ": lse";
  EXPECT_LE(RelativeError(got.grad_hidden, want.grad_hidden), tolerance) << what << ": grad_hidden";
  EXPECT_LE(RelativeError(got.grad_weight, want.grad_weight), tolerance) << what << ": grad_weight";
  EXPECT_EQ(got.grad_hidden.scalar_type(), got.grad_weight.scalar_type()) << what;
}

// Ragged shapes: rows and vocabulary not multiples of the tile (128), several tiles.
std::vector<Case> Cases() {
  std::vector<Case> cases;
  cases.push_back({77, 48, 1000, 0.25, {.vocab_tile = 128}});                  // 7 full tiles + one of 104
  cases.push_back({33, 40, 517, 0.3, {.label_smoothing = 0.1, .z_loss = 1e-3, .vocab_tile = 200}});
  cases.push_back({130, 24, 300, 0.1, {.tile_bytes = 130 * 4 * 128}});          // auto width: 128, 128, 44
  cases.push_back({5, 16, 2, 0.0, {}});                                         // a two-word vocabulary
  return cases;
}

std::string Describe(const Case& c) {
  return "N=" + std::to_string(c.rows) + " D=" + std::to_string(c.dim) + " V=" + std::to_string(c.vocab) +
         " smoothing=" + std::to_string(c.options.label_smoothing) + " z=" + std::to_string(c.options.z_loss);
}

// --- CPU -------------------------------------------------------------------------------------------------------

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
  loss::MeanOverTargets(loss::LinearCrossEntropy(h, w, targets, {.vocab_tile = 8192}).loss, targets).backward();

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
  EXPECT_EQ(loss::MeanOverTargets(got.loss, in.targets).item<double>(), 0.0) << "not NaN";
}

TEST(LinearCrossEntropyCpu, MeanOverTargetsIsTorchsMeanReduction) {
  const Case c{50, 24, 333, 0.4, {.vocab_tile = 100}};
  const Inputs in = RandomInputs(c, at::kFloat, at::kCPU, 6);
  const at::Tensor h = in.hidden.detach().requires_grad_(), w = in.weight.detach().requires_grad_();
  loss::MeanOverTargets(loss::LinearCrossEntropy(h, w, in.targets, c.options).loss, in.targets).backward();
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
  (loss::LinearCrossEntropy(h, in.weight, in.targets, c.options).loss * in.g_loss).sum().backward();
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
      const loss::TokenLosses out = loss::CrossEntropy(at::mm(h, w.t()), in.targets, c.options, in_place);
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
  const at::Tensor l = loss::CrossEntropy(logits, targets, {}, /*in_place=*/true).loss.sum();
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
  EXPECT_THAT(error([&] { loss::LinearCrossEntropy(h, w, at::tensor(std::vector<int64_t>{1, 10, 2})); }),
              HasSubstr("target 10 of row 1 is outside the vocabulary [0, 10)"));
  EXPECT_THAT(error([&] { loss::LinearCrossEntropy(h, w, at::tensor(std::vector<int64_t>{-1, 0, 2})); }),
              HasSubstr("target -1 of row 0"));
  EXPECT_THAT(error([&] { loss::LinearCrossEntropy(h, w.to(at::kBFloat16), ok); }),
              HasSubstr("weight is BFloat16 but hidden is Float"));
  EXPECT_THAT(error([&] { loss::LinearCrossEntropy(h, at::randn({10, 7}), ok); }),
              HasSubstr("expected hidden [N, D] and weight [V, D]"));
  EXPECT_THAT(error([&] { loss::LinearCrossEntropy(h, w, ok.to(at::kInt)); }), HasSubstr("targets must be int64"));
  EXPECT_THAT(error([&] { loss::LinearCrossEntropy(h, w, ok.slice(0, 0, 2)); }), HasSubstr("targets must be [3]"));
  EXPECT_THAT(error([&] { loss::LinearCrossEntropy(h, w, ok, {.label_smoothing = 1.5}); }),
              HasSubstr("label_smoothing must be in [0, 1]"));
  EXPECT_THAT(error([&] { loss::CrossEntropy(at::randn({3, 10}).t(), ok, {}, true); }),
              HasSubstr("in_place needs logits with contiguous rows"));
}

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
  EXPECT_EQ(ParseRecipe(yaml, "r.yaml", {})->loss, "auto");
  EXPECT_EQ(ParseRecipe(yaml, "r.yaml", {"loss=fused"})->loss, "fused");
  EXPECT_EQ(ParseRecipe(yaml, "r.yaml", {"loss=torch"})->loss, "torch");
  EXPECT_THAT(std::string(ParseRecipe(yaml, "r.yaml", {"loss=chunked"}).status().message()),
              HasSubstr("'chunked' is not one of auto|fused|torch"));
}

// --- GPU ---------------------------------------------------------------------------------------------------------

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
  EXPECT_EQ(loss::MeanOverTargets(got.loss, in.targets).item<double>(), 0.0);

  const Case d{777, 64, 2000, 0.25, {.vocab_tile = 512}};
  Inputs frozen = RandomInputs(d, at::kBFloat16, at::kCUDA, 8);
  frozen.g_logprob.zero_();
  const at::Tensor h = frozen.hidden.detach().requires_grad_();
  (loss::LinearCrossEntropy(h, frozen.weight, frozen.targets, d.options).loss * frozen.g_loss).sum().backward();
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
        const loss::TokenLosses out = loss::CrossEntropy(x_work, in.targets, c.options, in_place);
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
