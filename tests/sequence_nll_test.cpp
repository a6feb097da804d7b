// Packing isolation (trainer/objectives/sequence_nll.h): a packed batch gives every sample the per-token losses it
// gets alone, computed by a plain causal forward and a float64 log-softmax (no packing code involved); changing
// one sample's tokens leaves its neighbours' losses bit-identical.
#include <filesystem>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "data/packing.h"
#include "models/checkpoint.h"
#include "tests/test_util.h"
#include "trainer/device_batch.h"
#include "trainer/objectives/sequence_nll.h"

namespace agora {
namespace {

namespace fs = std::filesystem;
using agora::testing::RelativeError;

LlamaForCausalLM TinyModel() {
  auto loaded = LoadModel(fs::path(AGORA_SOURCE_DIR) / "assets/tiny-llama", ModelOptions{at::kFloat, at::kCPU});
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  return loaded->model;
}

// A random sample: random ids; labels trained on a random half of the positions.
TokenizedSample RandomSample(int64_t length, int64_t vocab, at::Generator& gen) {
  at::Tensor ids = at::randint(3, vocab, {length}, gen, at::kLong);
  at::Tensor trained = at::rand({length}, gen) < 0.5;
  TokenizedSample s;
  for (int64_t t = 0; t < length; ++t) {
    s.ids.push_back(static_cast<int32_t>(ids[t].item<int64_t>()));
    s.labels.push_back(trained[t].item<bool>() ? s.ids.back() : kIgnoreLabel);
  }
  return s;
}

// The reference: the sample alone through the plain causal forward, NLL in float64.
at::Tensor ReferenceNll(LlamaForCausalLM& model, const TokenizedSample& s) {
  const int64_t n = static_cast<int64_t>(s.ids.size());
  at::Tensor ids = at::tensor(std::vector<int64_t>(s.ids.begin(), s.ids.end()), at::kLong).view({1, n});
  at::Tensor logits = model->Logits(model->forward(ids, DefaultPositions(1, n, at::kCPU), AttentionMask{}));
  at::Tensor logp = logits.to(at::kDouble).log_softmax(-1)[0];
  at::Tensor nll = at::zeros({n}, at::kDouble);
  for (int64_t t = 1; t < n; ++t)
    if (s.labels[t] != kIgnoreLabel) nll[t] = -logp[t - 1][s.labels[t]];
  return nll;
}

TEST(PackingIsolation, PackedSamplesLoseExactlyWhatTheyLoseAlone) {
  at::NoGradGuard no_grad;
  LlamaForCausalLM model = TinyModel();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const int64_t vocab = model->config().vocab_size;
  std::vector<TokenizedSample> samples;
  for (int64_t length : {9, 17, 5, 12, 20}) samples.push_back(RandomSample(length, vocab, gen));
  // Two rows of 32: samples 0-2 (31 tokens, 1 padding) and 3-4 (32 tokens).
  const PackedBatch packed = AssembleBatch(
      {{{&samples[0], 0}, {&samples[1], 1}, {&samples[2], 2}}, {{&samples[3], 3}, {&samples[4], 4}}}, 32, 0);
  const at::Tensor nll = PackedTokenNll(model, ToDevice(packed, at::kCPU), HeadLoss::kTorch).to(at::kDouble);
  ASSERT_EQ(nll.size(0), 64);
  for (size_t s = 0; s < samples.size(); ++s) {
    const int64_t start = packed.cu_seqlens[s < 3 ? s : s + 1];  // row 0 ends with a padding segment
    const int64_t n = static_cast<int64_t>(samples[s].ids.size());
    const at::Tensor expected = ReferenceNll(model, samples[s]);
    const at::Tensor got = nll.slice(0, start, start + n);
    EXPECT_LE(RelativeError(got, expected), 1e-5) << "sample " << s;
    EXPECT_EQ(got[0].item<double>(), 0.0) << "the first token of a sample is never trained";
  }
  EXPECT_EQ(nll.slice(0, 31, 32).abs().sum().item<double>(), 0.0) << "padding carries no loss";

  // Changing sample 1 changes nothing for samples 0 and 2, bit for bit.
  TokenizedSample other = RandomSample(17, vocab, gen);
  const PackedBatch changed = AssembleBatch(
      {{{&samples[0], 0}, {&other, 1}, {&samples[2], 2}}, {{&samples[3], 3}, {&samples[4], 4}}}, 32, 0);
  const at::Tensor nll2 = PackedTokenNll(model, ToDevice(changed, at::kCPU), HeadLoss::kTorch).to(at::kDouble);
  EXPECT_TRUE(at::equal(nll.slice(0, 0, 9), nll2.slice(0, 0, 9)));
  EXPECT_TRUE(at::equal(nll.slice(0, 26, 64), nll2.slice(0, 26, 64)));
  EXPECT_FALSE(at::equal(nll.slice(0, 9, 26), nll2.slice(0, 9, 26)));
}

}  // namespace
}  // namespace agora
