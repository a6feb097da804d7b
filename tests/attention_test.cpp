// The attention entry point against the float64 textbook reference, with masks built independently here.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "kernels/reference/attention_reference.h"
#include "models/attention.h"
#include "tests/test_util.h"

namespace agora {
namespace {

using testing::RelativeError;

struct Inputs {
  at::Tensor q, k, v;
};

Inputs Random(int64_t b, int64_t hq, int64_t hkv, int64_t s_q, int64_t s_k, int64_t d, uint64_t seed) {
  at::manual_seed(seed);
  return {at::randn({b, hq, s_q, d}), at::randn({b, hkv, s_k, d}), at::randn({b, hkv, s_k, d})};
}

// allowed[b][0][i][j], from loops over the definition.
at::Tensor ReferenceMask(int64_t b, int64_t s_q, int64_t s_k, int64_t offset, bool causal,
                         const std::vector<int64_t>& cu_seqlens, const at::Tensor& key_valid) {
  at::Tensor m = at::zeros({b, 1, s_q, s_k}, at::kBool);
  auto sample_of = [&](int64_t pos) {
    int64_t s = 0;
    while (s + 1 < static_cast<int64_t>(cu_seqlens.size()) && pos >= cu_seqlens[s + 1]) ++s;
    return s;
  };
  for (int64_t r = 0; r < b; ++r)
    for (int64_t i = 0; i < s_q; ++i)
      for (int64_t j = 0; j < s_k; ++j) {
        bool ok = !causal || j <= i + offset;
        if (!cu_seqlens.empty()) ok = ok && sample_of(i) == sample_of(j);
        if (key_valid.defined()) ok = ok && (key_valid[r][j].item<bool>() || j == i + offset);
        m[r][0][i][j] = ok;
      }
  return m;
}

void ExpectMatches(const Inputs& x, const AttentionMask& mask, const at::Tensor& allowed) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(x.q.size(-1)));
  at::Tensor got = Attention(x.q, x.k, x.v, mask, scale);
  at::Tensor want = reference::MathAttention(x.q, x.k, x.v, allowed, scale);
  EXPECT_LE(RelativeError(got, want), 1e-5);
  EXPECT_TRUE(at::equal(MaterializeMask(mask, x.q.size(0), x.q.size(2), x.k.size(2), at::kCPU), allowed));
}

TEST(Attention, CausalGroupedQuery) {
  Inputs x = Random(2, 8, 2, 37, 37, 16, 1);
  ExpectMatches(x, {}, ReferenceMask(2, 37, 37, 0, true, {}, {}));
}

TEST(Attention, FullMask) {
  Inputs x = Random(2, 4, 4, 9, 13, 32, 2);
  AttentionMask mask;
  mask.causal = false;
  ExpectMatches(x, mask, ReferenceMask(2, 9, 13, 0, false, {}, {}));
}

TEST(Attention, DecodingWithOffsetAndPadding) {
  Inputs x = Random(3, 4, 2, 2, 11, 8, 3);
  at::Tensor key_valid = at::ones({3, 11}, at::kBool);
  key_valid[0].slice(0, 0, 4).fill_(false);
  key_valid[2].slice(0, 0, 1).fill_(false);
  AttentionMask mask;
  mask.query_offset = 9;
  mask.key_valid = key_valid;
  ExpectMatches(x, mask, ReferenceMask(3, 2, 11, 9, true, {}, key_valid));
}

TEST(Attention, PackedSamplesStayApart) {
  const std::vector<int64_t> cu = {0, 5, 9, 16, 23};
  Inputs x = Random(1, 4, 2, 23, 23, 16, 4);
  AttentionMask mask;
  mask.cu_seqlens = at::tensor(cu, at::kInt);
  ExpectMatches(x, mask, ReferenceMask(1, 23, 23, 0, true, cu, {}));
  // and each packed sample equals the sample attended alone
  at::Tensor packed = Attention(x.q, x.k, x.v, mask, 0.25);
  for (size_t s = 0; s + 1 < cu.size(); ++s) {
    auto part = [&](const at::Tensor& t) { return t.slice(2, cu[s], cu[s + 1]); };
    at::Tensor alone = Attention(part(x.q), part(x.k), part(x.v), {}, 0.25);
    EXPECT_LE(RelativeError(part(packed), alone), 1e-6) << "sample " << s;
  }
}

}  // namespace
}  // namespace agora
