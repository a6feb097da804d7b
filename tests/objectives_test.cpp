// The seeds' objectives: Stable Alignment's and DPO's losses against their formulas written out here in plain
// double arithmetic (random inputs, ties, K = 2, equal ratings, single responses, ragged groups), the per-
// sequence sums they build on, and gradient checks of both losses through a float64 tiny model by finite
// differences.
#include <cmath>
#include <filesystem>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "data/packing.h"
#include "models/checkpoint.h"
#include "tests/test_util.h"
#include "trainer/objectives/dpo.h"
#include "trainer/objectives/preference_losses.h"
#include "trainer/objectives/sequence_nll.h"
#include "trainer/objectives/stable_alignment.h"

namespace agora {
namespace {

namespace fs = std::filesystem;
using agora::testing::RelativeError;

// --- Stable Alignment's loss against its formula ------------------------------------------------------------

// The formula for one query, from the paper's code, in doubles: ce and scores of its valid responses.
double StableAlignmentFormula(const std::vector<double>& ce, const std::vector<double>& s,
                              const StableAlignmentOptions& o) {
  size_t b = 0;
  for (size_t i = 1; i < s.size(); ++i)
    if (s[i] > s[b]) b = i;  // the first of equals
  if (ce.size() == 1) return ce[b];
  double mean = 0;
  for (size_t i = 0; i < ce.size(); ++i)
    if (i != b) mean += ce[b] - ce[i] + (s[b] - s[i]) / o.rating_scale * o.margin;
  mean /= static_cast<double>(ce.size() - 1);
  return ce[b] + o.ratio * std::max(0.0, mean);
}

struct SaCase {
  const char* name;
  std::vector<int64_t> group_sizes;  // responses per query (the rest of K is padding)
  bool equal_ratings;
  bool ties;
};

void PrintTo(const SaCase& c, std::ostream* os) { *os << c.name; }

class StableAlignmentLossTest : public ::testing::TestWithParam<SaCase> {};

TEST_P(StableAlignmentLossTest, EqualsTheFormula) {
  const SaCase& c = GetParam();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(11);
  const int64_t g = static_cast<int64_t>(c.group_sizes.size());
  const int64_t k = *std::max_element(c.group_sizes.begin(), c.group_sizes.end());
  // Random mean NLLs around the size they have in training, integer ratings 1..7.
  at::Tensor ce = at::rand({g, k}, gen, at::kDouble) * 4 + 0.5;
  at::Tensor scores = at::randint(1, 8, {g, k}, gen, at::kDouble);
  if (c.equal_ratings) scores.fill_(5);
  if (c.ties) scores.select(1, 1).copy_(scores.select(1, 0));  // the best may be tied with another response
  at::Tensor valid = at::zeros({g, k}, at::kBool);
  for (int64_t q = 0; q < g; ++q) valid[q].slice(0, 0, c.group_sizes[q]).fill_(true);
  for (const StableAlignmentOptions& o : {StableAlignmentOptions{}, StableAlignmentOptions{7.0, 10.0, 0.5}}) {
    at::Tensor loss = StableAlignmentLoss(ce, scores, valid, o);
    ASSERT_EQ(loss.sizes(), at::IntArrayRef({g}));
    for (int64_t q = 0; q < g; ++q) {
      std::vector<double> ce_q, s_q;
      for (int64_t i = 0; i < c.group_sizes[q]; ++i) {
        ce_q.push_back(ce[q][i].item<double>());
        s_q.push_back(scores[q][i].item<double>());
      }
      const double expected = StableAlignmentFormula(ce_q, s_q, o);
      EXPECT_NEAR(loss[q].item<double>(), expected, 1e-12 * std::abs(expected)) << "query " << q;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Objectives, StableAlignmentLossTest,
                         ::testing::Values(SaCase{"K3", {3, 3, 3, 3, 3, 3, 3, 3}, false, false},
                                           SaCase{"K3Ties", {3, 3, 3, 3, 3, 3}, false, true},
                                           SaCase{"K2", {2, 2, 2, 2, 2}, false, false},
                                           SaCase{"AllEqualRatings", {3, 3, 3, 3}, true, false},
                                           SaCase{"SingleResponse", {1, 1, 1}, false, false},
                                           SaCase{"Ragged", {3, 1, 2, 3, 2, 1}, false, false}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(StableAlignmentLoss, TheHingeIsOnTheMeanNotPerTerm) {
  // d = (CE_b - CE_1 + 0) and (CE_b - CE_2 + 0): one positive, one more negative; their mean is negative, so no
  // penalty, although a per-term hinge would give one.
  at::Tensor ce = at::tensor({1.0, 0.5, 3.0}, at::kDouble).view({1, 3});
  at::Tensor scores = at::tensor({7.0, 7.0, 7.0}, at::kDouble).view({1, 3});
  at::Tensor penalty;
  at::Tensor loss = StableAlignmentLoss(ce, scores, at::ones({1, 3}, at::kBool), {}, &penalty);
  EXPECT_DOUBLE_EQ(penalty.item<double>(), 0.0);
  EXPECT_DOUBLE_EQ(loss.item<double>(), 1.0);
}

// --- DPO's loss against its formula ----------------------------------------------------------------------------

TEST(DpoLoss, EqualsTheFormula) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  at::Tensor lp = at::randn({4, 16}, gen, at::kDouble) * 30 - 60;  // summed log-probabilities, wide spread
  for (double beta : {0.01, 0.1, 0.5}) {
    at::Tensor loss = DpoLoss(lp[0], lp[1], lp[2], lp[3], beta);
    for (int64_t p = 0; p < 16; ++p) {
      const double x = beta * ((lp[0][p].item<double>() - lp[2][p].item<double>()) -
                               (lp[1][p].item<double>() - lp[3][p].item<double>()));
      const double expected = std::log1p(std::exp(-x));  // -log sigmoid(x)
      EXPECT_NEAR(loss[p].item<double>(), expected, 1e-12 * std::max(1.0, expected)) << "beta " << beta;
    }
  }
  // At the start of training the policy is the reference: log 2 per pair.
  EXPECT_NEAR(DpoLoss(lp[0], lp[1], lp[0], lp[1], 0.1).mean().item<double>(), std::log(2.0), 1e-15);
}

// --- per-sequence sums ------------------------------------------------------------------------------------------

// Groups of sequences with random ids and labels trained on a random suffix, laid out as the loader does.
struct Sequences {
  std::vector<TokenizedSample> samples;
  std::vector<std::vector<RowSample>> rows;
};

Sequences RandomGroups(const std::vector<std::vector<float>>& group_scores, int64_t vocab, at::Generator& gen) {
  Sequences out;
  for (const auto& scores : group_scores)
    for (size_t k = 0; k < scores.size(); ++k) {
      const int64_t n = 6 + at::randint(0, 8, {1}, gen, at::kLong).item<int64_t>();
      const int64_t prompt = 2 + at::randint(0, 3, {1}, gen, at::kLong).item<int64_t>();
      TokenizedSample s;
      at::Tensor ids = at::randint(3, vocab, {n}, gen, at::kLong);
      for (int64_t t = 0; t < n; ++t) {
        s.ids.push_back(static_cast<int32_t>(ids[t].item<int64_t>()));
        s.labels.push_back(t < prompt ? kIgnoreLabel : s.ids.back());
      }
      out.samples.push_back(s);
    }
  size_t next = 0;
  for (size_t g = 0; g < group_scores.size(); ++g) {
    out.rows.emplace_back();
    for (float score : group_scores[g])
      out.rows.back().push_back({&out.samples[next++], static_cast<int32_t>(g), static_cast<int32_t>(g), score});
  }
  return out;
}

TEST(PerSequenceNll, SumsAndCountsEachSequenceAndGroupsThem) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  Sequences seqs = RandomGroups({{5, 2, 7}, {3}, {1, 6}}, 100, gen);
  const PackedBatch packed = AssembleBatch(seqs.rows, 50, 0);
  DeviceBatch batch = ToDevice(packed, at::kCPU);
  ASSERT_EQ(batch.num_samples, 6);
  ASSERT_EQ(batch.num_groups, 3);
  at::Tensor token_nll = at::rand({packed.rows * packed.seq_len}, gen, at::kDouble);
  token_nll.masked_fill_(batch.labels.view({-1}).eq(kIgnoreLabel), 0.0);
  SequenceNll nll = PerSequenceNll(token_nll, batch);
  for (int64_t s = 0; s < 6; ++s) {
    double sum = 0, count = 0;
    for (int64_t t = 0; t < token_nll.size(0); ++t)
      if (packed.sequence_id[t] == s && packed.labels[t] != kIgnoreLabel) sum += token_nll[t].item<double>(), ++count;
    EXPECT_NEAR(nll.sum[s].item<double>(), sum, 1e-12);
    EXPECT_EQ(nll.count[s].item<double>(), count);
  }
  GroupedValues scores = ByGroup(batch.sequence_score, batch, -1.0);
  EXPECT_TRUE(at::equal(scores.values, at::tensor({5, 2, 7, 3, -1, -1, 1, 6, -1}, at::kFloat).view({3, 3})));
  EXPECT_TRUE(at::equal(scores.valid, at::tensor({1, 1, 1, 1, 0, 0, 1, 1, 0}, at::kInt).to(at::kBool).view({3, 3})));
}

// --- gradient checks through a float64 model ----------------------------------------------------------------------

LlamaForCausalLM TinyModel64() {
  auto loaded = LoadModel(fs::path(AGORA_SOURCE_DIR) / "assets/tiny-llama", ModelOptions{at::kDouble, at::kCPU});
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  return loaded->model;
}

// d loss / d theta by autograd against central differences, on a few entries of a few weights.
void ExpectGradientsMatchFiniteDifferences(LlamaForCausalLM& model, Objective& objective, const DeviceBatch& batch) {
  auto loss = [&] { return objective.Forward(model, batch).loss_sum / static_cast<double>(batch.num_groups); };
  for (auto& p : model->parameters()) p.set_requires_grad(true);
  model->zero_grad();
  loss().backward();
  at::NoGradGuard no_grad;
  int checked = 0;
  for (const auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    if (name != "model.layers.0.self_attn.q_proj.weight" && name != "model.layers.1.mlp.down_proj.weight" &&
        name != "model.embed_tokens.weight" && name != "model.norm.weight")
      continue;
    at::Tensor w = item.value();
    at::Tensor grad = w.grad().view({-1});
    at::Tensor flat = w.view({-1});
    // The entries with the largest gradients (a random entry of the embedding is mostly an unused token).
    at::Tensor top = std::get<1>(grad.abs().topk(3));
    for (int64_t j = 0; j < 3; ++j) {
      const int64_t i = top[j].item<int64_t>();
      const double eps = 1e-6, old = flat[i].item<double>();
      flat[i] = old + eps;
      const double up = loss().item<double>();
      flat[i] = old - eps;
      const double down = loss().item<double>();
      flat[i] = old;
      const double numeric = (up - down) / (2 * eps), analytic = grad[i].item<double>();
      EXPECT_NEAR(analytic, numeric, 1e-6 * std::max(1.0, std::abs(numeric))) << name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_EQ(checked, 12);
}

TEST(ObjectiveGradients, StableAlignmentMatchesFiniteDifferences) {
  LlamaForCausalLM model = TinyModel64();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(21);
  Sequences seqs = RandomGroups({{6, 2, 4}, {3, 7}, {5, 5, 1}}, model->config().vocab_size, gen);
  const PackedBatch packed = AssembleBatch(seqs.rows, 48, 0);
  // A large margin, so that the hinge is active and its gradient is checked too.
  StableAlignmentObjective objective(StableAlignmentOptions{7.0, 30.0, 0.5}, HeadLoss::kTorch);
  const DeviceBatch batch = ToDevice(packed, at::kCPU);
  {
    at::NoGradGuard no_grad;
    LossOutput out = objective.Forward(model, batch);
    ASSERT_GT(out.metrics[1].second.item<double>(), 0.0) << "the hinge term should be active in this check";
  }
  ExpectGradientsMatchFiniteDifferences(model, objective, batch);
}

TEST(ObjectiveGradients, DpoMatchesFiniteDifferences) {
  LlamaForCausalLM model = TinyModel64();
  LlamaForCausalLM reference = TinyModel64();
  {
    at::NoGradGuard no_grad;
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(8);
    for (auto& p : reference->parameters()) p.add_(at::randn(p.sizes(), gen, at::kDouble) * 0.02);
  }
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(22);
  Sequences seqs = RandomGroups({{1, 0}, {1, 0}, {1, 0}}, model->config().vocab_size, gen);
  const PackedBatch packed = AssembleBatch(seqs.rows, 48, 0);
  DpoObjective objective(0.5, HeadLoss::kTorch, reference);
  ExpectGradientsMatchFiniteDifferences(model, objective, ToDevice(packed, at::kCPU));
}

}  // namespace
}  // namespace agora
