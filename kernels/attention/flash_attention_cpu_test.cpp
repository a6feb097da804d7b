// The kernel lab's check: the tiled CPU reference (the algorithm the CUDA kernels implement) against float64
// textbook attention, on fp32 random inputs, for every shape the GPU test sweeps. Runs on any machine.
#include <gtest/gtest.h>

#include "kernels/attention/attention_test_reference.h"
#include "kernels/attention/flash_attention_cpu.h"

namespace agora::kernels {
namespace {

using testing::Case;

std::string Describe(const Case& c) {
  std::string s = "B" + std::to_string(c.batch) + " Hq" + std::to_string(c.heads_q) + " Hkv" +
                  std::to_string(c.heads_kv) + " S" + std::to_string(c.seqlen) + " D" + std::to_string(c.head_dim) +
                  (c.causal ? " causal" : " full");
  if (!c.cu_seqlens.empty()) s += " packed";
  return s;
}

void CheckCase(const Case& c) {
  SCOPED_TRACE(Describe(c));
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  testing::Inputs x = testing::RandomInputs(c, at::kFloat, at::kCPU, 7 + c.seqlen + c.head_dim);
  // Outputs start as NaN: every element the reference leaves unwritten shows up as an error.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  at::Tensor o = at::full_like(x.q, nan), dq = at::full_like(x.q, nan);
  at::Tensor dk = at::full_like(x.k, nan), dv = at::full_like(x.v, nan);
  at::Tensor lse = at::full({c.batch, c.heads_q, c.seqlen}, nan);
  at::Tensor delta = at::full_like(lse, nan);
  at::Tensor dq_accum = at::zeros_like(x.q);

  FlashAttentionParams p;
  p.q = x.q.data_ptr();
  p.k = x.k.data_ptr();
  p.v = x.v.data_ptr();
  p.q_strides = testing::BshdStrides(x.q);
  p.k_strides = testing::BshdStrides(x.k);
  p.v_strides = testing::BshdStrides(x.v);
  p.o = o.data_ptr();
  p.o_strides = testing::BshdStrides(o);
  p.lse = lse.data_ptr<float>();
  p.dout = x.dout.data_ptr();
  p.dout_strides = testing::BshdStrides(x.dout);
  p.dq = dq.data_ptr();
  p.dk = dk.data_ptr();
  p.dv = dv.data_ptr();
  p.dq_strides = testing::BshdStrides(dq);
  p.dk_strides = testing::BshdStrides(dk);
  p.dv_strides = testing::BshdStrides(dv);
  p.delta = delta.data_ptr<float>();
  p.dq_accum = dq_accum.data_ptr<float>();
  p.batch = c.batch;
  p.heads_q = c.heads_q;
  p.heads_kv = c.heads_kv;
  p.seqlen = c.seqlen;
  p.head_dim = c.head_dim;
  p.cu_seqlens = c.cu_seqlens.empty() ? nullptr : c.cu_seqlens.data();
  p.num_samples = c.cu_seqlens.empty() ? 1 : static_cast<int>(c.cu_seqlens.size()) - 1;
  p.scale = static_cast<float>(scale);
  p.causal = c.causal;

  FlashAttentionForwardCpu(p);
  FlashAttentionBackwardCpu(p);

  testing::Expected e = testing::MathAttention64(c, x, scale);
  EXPECT_LE(testing::RelativeError(o, e.out), 1e-5) << "out";
  EXPECT_LE(testing::RelativeError(lse, e.lse), 1e-5) << "lse";
  EXPECT_LE(testing::RelativeError(dq, e.dq), 1e-5) << "dq";
  EXPECT_LE(testing::RelativeError(dk, e.dk), 1e-5) << "dk";
  EXPECT_LE(testing::RelativeError(dv, e.dv), 1e-5) << "dv";
}

TEST(FlashAttentionLab, HeadDim64MatchesFloat64Math) {
  for (const Case& c : testing::SweepCases(64)) CheckCase(c);
}

TEST(FlashAttentionLab, HeadDim128MatchesFloat64Math) {
  for (const Case& c : testing::SweepCases(128)) CheckCase(c);
}

// The algorithm does not depend on the head dim; a small odd one runs the tiling edge cases quickly.
TEST(FlashAttentionLab, SmallHeadDimManyTiles) {
  CheckCase({1, 4, 2, 333, 8, true, {0, 63, 64, 65, 200, 333}});
  CheckCase({2, 2, 1, 129, 8, false, {}});
}

}  // namespace
}  // namespace agora::kernels
