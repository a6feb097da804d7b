// Test support shared by the CPU path's test and the GPU kernels' test: random inputs, the float64 torch answer
// (mm + cross_entropy with its label smoothing + z-loss, log_softmax, autograd) and the comparison with the bounds.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "kernels/loss/cross_entropy.h"
#include "tests/test_util.h"
#include "util/ignore_label.h"

namespace agora::loss::testing {

using ::agora::testing::RelativeError;

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
inline Inputs RandomInputs(const Case& c, at::ScalarType dtype, const at::Device& device, uint64_t seed) {
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
inline Results Float64Reference(const Inputs& in, const CrossEntropyOptions& o) {
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

inline Results RunLinear(const Inputs& in, const CrossEntropyOptions& o) {
  const at::Tensor h = in.hidden.detach().requires_grad_();
  const at::Tensor w = in.weight.detach().requires_grad_();
  const TokenLosses out = LinearCrossEntropy(h, w, in.targets, o);
  (out.loss * in.g_loss + out.logprob * in.g_logprob).sum().backward();
  return {out.loss, out.logprob, out.lse, h.grad(), w.grad()};
}

inline void ExpectClose(const Results& got, const Results& want, double tolerance, const std::string& what) {
  EXPECT_LE(RelativeError(got.loss, want.loss), tolerance) << what << ": loss";
  EXPECT_LE(RelativeError(got.logprob, want.logprob), tolerance) << what << ": logprob";
  EXPECT_LE(RelativeError(got.lse, want.lse), tolerance) << what << ": lse";
  EXPECT_LE(RelativeError(got.grad_hidden, want.grad_hidden), tolerance) << what << ": grad_hidden";
  EXPECT_LE(RelativeError(got.grad_weight, want.grad_weight), tolerance) << what << ": grad_weight";
  EXPECT_EQ(got.grad_hidden.scalar_type(), got.grad_weight.scalar_type()) << what;
}

// Ragged shapes: rows and vocabulary not multiples of the tile (128), several tiles.
inline std::vector<Case> Cases() {
  std::vector<Case> cases;
  cases.push_back({77, 48, 1000, 0.25, {.vocab_tile = 128}});                  // 7 full tiles + one of 104
  cases.push_back({33, 40, 517, 0.3, {.label_smoothing = 0.1, .z_loss = 1e-3, .vocab_tile = 200}});
  cases.push_back({130, 24, 300, 0.1, {.tile_bytes = 130 * 4 * 128}});          // auto width: 128, 128, 44
  cases.push_back({5, 16, 2, 0.0, {}});                                         // a two-word vocabulary
  return cases;
}

inline std::string Describe(const Case& c) {
  return "N=" + std::to_string(c.rows) + " D=" + std::to_string(c.dim) + " V=" + std::to_string(c.vocab) +
         " smoothing=" + std::to_string(c.options.label_smoothing) + " z=" + std::to_string(c.options.z_loss);
}

}  // namespace agora::loss::testing
