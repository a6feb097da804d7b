// The CUDA flash attention kernels against float64 textbook attention: output, log-sum-exp and dq/dk/dv for every
// (dtype, head dim, causal, shape) the kernels support, outputs NaN-poisoned before each run; the autograd op
// through the model's attention entry point; and the errors for what the kernels do not support. The GPU tests
// skip loudly without a GPU (the CPU lab test, flash_attention_cpu_test.cpp, checks the algorithm here).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include "kernels/attention/attention_test_reference.h"
#include "kernels/attention/flash_attention.h"
#include "models/attention.h"
#include "models/llama.h"
#include "tests/test_util.h"

namespace agora::kernels {
namespace {

using testing::Case;

std::string Describe(const Case& c, at::ScalarType dtype) {
  std::string s = std::string(c10::toString(dtype)) + " B" + std::to_string(c.batch) + " Hq" +
                  std::to_string(c.heads_q) + " Hkv" + std::to_string(c.heads_kv) + " S" + std::to_string(c.seqlen) +
                  " D" + std::to_string(c.head_dim) + (c.causal ? " causal" : " full");
  if (!c.cu_seqlens.empty()) s += " packed";
  return s;
}

// [B, S, H, D] memory seen as [B, H, S, D]: the layout the model hands to the kernels.
at::Tensor Heads(const at::Tensor& t) { return t.transpose(1, 2); }

void CheckKernels(const Case& c, at::ScalarType dtype, double tolerance) {
  SCOPED_TRACE(Describe(c, dtype));
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  testing::Inputs x = testing::RandomInputs(c, dtype, at::kCUDA, 11 + c.seqlen + c.head_dim);
  at::Tensor cu = c.cu_seqlens.empty() ? at::Tensor() : at::tensor(c.cu_seqlens, at::kInt);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  at::Tensor out = at::full_like(x.q, nan), dq = at::full_like(x.q, nan);
  at::Tensor dk = at::full_like(x.k, nan), dv = at::full_like(x.v, nan);
  at::Tensor lse = at::full({c.batch, c.heads_q, c.seqlen}, nan, x.q.options().dtype(at::kFloat));

  FlashAttentionForward(Heads(x.q), Heads(x.k), Heads(x.v), cu, c.causal, scale, Heads(out), lse);
  FlashAttentionBackward(Heads(x.q), Heads(x.k), Heads(x.v), Heads(out), lse, Heads(x.dout), cu, c.causal, scale,
                         Heads(dq), Heads(dk), Heads(dv));

  testing::Expected e = testing::MathAttention64(c, x, scale);
  EXPECT_LE(testing::RelativeError(out, e.out), tolerance) << "out";
  EXPECT_LE(testing::RelativeError(lse, e.lse), tolerance) << "lse";
  EXPECT_LE(testing::RelativeError(dq, e.dq), tolerance) << "dq";
  EXPECT_LE(testing::RelativeError(dk, e.dk), tolerance) << "dk";
  EXPECT_LE(testing::RelativeError(dv, e.dv), tolerance) << "dv";
}

void CheckAll(at::ScalarType dtype, int head_dim, double tolerance) {
  AGORA_SKIP_WITHOUT_CUDA();
  for (const Case& c : testing::SweepCases(head_dim)) CheckKernels(c, dtype, tolerance);
}

TEST(FlashAttentionCuda, BFloat16HeadDim64) { CheckAll(at::kBFloat16, 64, 1e-2); }
TEST(FlashAttentionCuda, BFloat16HeadDim128) { CheckAll(at::kBFloat16, 128, 1e-2); }
TEST(FlashAttentionCuda, Float16HeadDim64) { CheckAll(at::kHalf, 64, 3e-3); }
TEST(FlashAttentionCuda, Float16HeadDim128) { CheckAll(at::kHalf, 128, 3e-3); }

// Longer sequences: many key tiles per query tile (the online-softmax rescaling), many query tiles per key tile.
TEST(FlashAttentionCuda, LongSequences) {
  AGORA_SKIP_WITHOUT_CUDA();
  CheckKernels({1, 4, 2, 1000, 128, true, {}}, at::kBFloat16, 1e-2);
  CheckKernels({1, 2, 1, 777, 64, false, {0, 300, 301, 777}}, at::kHalf, 3e-3);
}

// A small packed case of each head dim: what tools/gpu-session.sh runs under compute-sanitizer.
TEST(FlashAttentionCuda, SmallPackedCases) {
  AGORA_SKIP_WITHOUT_CUDA();
  CheckKernels({1, 4, 2, 203, 64, true, {0, 1, 40, 141, 203}}, at::kBFloat16, 1e-2);
  CheckKernels({2, 4, 2, 77, 128, false, {}}, at::kHalf, 3e-3);
}

// The model's path: Attention() on CUDA in bf16 runs the kernels through autograd; gradients reach q, k, v.
TEST(FlashAttentionCuda, AutogradThroughTheEntryPoint) {
  AGORA_SKIP_WITHOUT_CUDA();
  const Case c{1, 8, 2, 203, 128, true, {0, 1, 40, 141, 203}};
  const double scale = 1.0 / std::sqrt(128.0);
  testing::Inputs x = testing::RandomInputs(c, at::kBFloat16, at::kCUDA, 5);
  at::Tensor q = x.q.clone().requires_grad_(), k = x.k.clone().requires_grad_(), v = x.v.clone().requires_grad_();
  AttentionMask mask;
  mask.cu_seqlens = at::tensor(c.cu_seqlens, at::kInt);
  at::Tensor out = Attention(Heads(q), Heads(k), Heads(v), mask, scale, AttentionBackend::kAgora);
  auto grads = torch::autograd::grad({out}, {q, k, v}, {Heads(x.dout)});
  testing::Expected e = testing::MathAttention64(c, x, scale);
  EXPECT_LE(testing::RelativeError(out.transpose(1, 2), e.out), 1e-2);
  EXPECT_LE(testing::RelativeError(grads[0], e.dq), 1e-2);
  EXPECT_LE(testing::RelativeError(grads[1], e.dk), 1e-2);
  EXPECT_LE(testing::RelativeError(grads[2], e.dv), 1e-2);
  // The same call with the kernels' direct API gives the same bits: the entry point did use them.
  at::Tensor direct = FlashAttention(Heads(x.q), Heads(x.k), Heads(x.v), mask.cu_seqlens, true, scale);
  EXPECT_TRUE(at::equal(out.detach(), direct));
}

// The wiring inside the model: a bf16 Llama with head dim 64 on a packed batch gives the same hidden states and
// gradients with model.attention=agora as with sdpa. Both are bf16 computations (each checked against float64
// above), so the bound is loose: a wiring error (layout, positions, samples, GQA) is an O(1) difference.
TEST(FlashAttentionCuda, LlamaWithAgoraAttentionMatchesSdpa) {
  AGORA_SKIP_WITHOUT_CUDA();
  LlamaConfig c;
  c.vocab_size = 256;
  c.hidden_size = 256;
  c.intermediate_size = 512;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.max_position_embeddings = 512;
  // The backend is fixed when a model is built: two models, one set of random weights.
  auto build = [&](AttentionBackend backend) {
    ModelOptions options{at::kBFloat16, at::kCUDA};
    options.attention = backend;
    return LlamaForCausalLM(c, options);
  };
  LlamaForCausalLM model = build(AttentionBackend::kAgora), sdpa_model = build(AttentionBackend::kSdpa);
  at::manual_seed(9);
  {
    at::NoGradGuard no_grad;
    for (at::Tensor p : model->parameters()) p.dim() == 1 ? p.fill_(1.0) : p.normal_(0.0, 0.05);
    const std::vector<at::Tensor> from = model->parameters(), to = sdpa_model->parameters();
    for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
  }
  const std::vector<int64_t> cu = {0, 50, 130, 200};
  at::Tensor ids = at::randint(c.vocab_size, {1, 200}, at::TensorOptions().dtype(at::kLong).device(at::kCUDA));
  at::Tensor positions = at::cat({at::arange(50), at::arange(80), at::arange(70)}).view({1, 200}).to(at::kCUDA);
  AttentionMask mask;
  mask.cu_seqlens = at::tensor(cu, at::kLong);
  at::Tensor weights = at::randn({1, 200, c.hidden_size}, at::TensorOptions().device(at::kCUDA));

  auto run = [&](LlamaForCausalLM& m) {
    for (at::Tensor p : m->parameters()) p.set_requires_grad(true);
    at::Tensor hidden = m->forward(ids, positions, mask);
    (hidden.to(at::kFloat) * weights).sum().backward();
    std::vector<at::Tensor> grads;
    for (const at::Tensor& p : m->parameters()) grads.push_back(p.grad().clone());
    return std::pair{hidden.detach(), grads};
  };
  auto [agora_hidden, agora_grads] = run(model);
  auto [sdpa_hidden, sdpa_grads] = run(sdpa_model);
  EXPECT_LE(testing::RelativeError(agora_hidden, sdpa_hidden), 5e-2);
  const auto names = model->named_parameters().keys();
  for (size_t i = 0; i < agora_grads.size(); ++i)
    EXPECT_LE(testing::RelativeError(agora_grads[i], sdpa_grads[i]), 5e-2) << names[i];
}

TEST(FlashAttentionCuda, RejectsBadSampleOffsets) {
  AGORA_SKIP_WITHOUT_CUDA();
  testing::Inputs x = testing::RandomInputs({1, 2, 2, 10, 64, true, {}}, at::kHalf, at::kCUDA, 3);
  auto call = [&](std::vector<int32_t> cu) {
    FlashAttention(Heads(x.q), Heads(x.k), Heads(x.v), at::tensor(cu, at::kInt), true, 0.125);
  };
  EXPECT_THROW(call({0, 5, 9}), c10::Error);   // does not reach S = 10
  EXPECT_THROW(call({0, 5, 5, 10}), c10::Error);  // an empty sample
}

// Runs anywhere: the head-dim and dtype checks come before any device work.
TEST(FlashAttention, UnsupportedHeadDimIsAClearError) {
  at::Tensor q = at::zeros({1, 2, 8, 96}, at::kBFloat16);
  try {
    FlashAttention(q, q, q, at::Tensor(), true, 0.1);
    FAIL() << "head dim 96 was accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("head dim 96 is not supported"), std::string::npos)
        << e.what_without_backtrace();
  }
  EXPECT_FALSE(FlashAttentionSupports(q, q, q));
}

TEST(FlashAttention, Float32IsAClearError) {
  at::Tensor q = at::zeros({1, 2, 8, 64});
  try {
    FlashAttention(q, q, q, at::Tensor(), true, 0.1);
    FAIL() << "float32 was accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("must be bfloat16 or float16, got Float"),
              std::string::npos)
        << e.what_without_backtrace();
  }
}

// Packed samples are checked and converted once per batch; on the CPU the same code runs without pinning.
TEST(FlashAttention, PreparesPackedSamplesOnce) {
  const PackedSamples s = PreparePackedSamples(at::tensor(std::vector<int64_t>{0, 3, 40, 41, 100}), 100, at::kCPU);
  EXPECT_EQ(s.count, 4);
  EXPECT_EQ(s.max_len, 59);
  ASSERT_EQ(s.device_offsets.scalar_type(), at::kInt);
  EXPECT_TRUE(at::equal(s.device_offsets, at::tensor(std::vector<int32_t>{0, 3, 40, 41, 100})));
  const PackedSamples none = PreparePackedSamples(at::Tensor(), 100, at::kCPU);
  EXPECT_FALSE(none.device_offsets.defined());
  EXPECT_EQ(none.count, 1);
  auto message = [](std::vector<int32_t> cu) {
    try {
      PreparePackedSamples(at::tensor(cu, at::kInt), 10, at::kCPU);
    } catch (const c10::Error& e) {
      return std::string(e.what_without_backtrace());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message({0, 5, 9}).find("must run from 0 to the sequence length 10"), std::string::npos);
  EXPECT_NE(message({0, 5, 5, 10}).find("must increase"), std::string::npos);
}

// A grid past CUDA's 65535 blocks in z is a clear error before any launch (checked before the device, so here).
TEST(FlashAttention, GridPastTheLaunchLimitsIsAClearError) {
  at::manual_seed(4);
  const int64_t samples = 40000;  // x batch 2 = 80000 blocks in z
  at::Tensor q = at::randn({2, 1, samples, 64}).to(at::kBFloat16);
  const PackedSamples s = PreparePackedSamples(at::arange(samples + 1), samples, at::kCPU);
  try {
    FlashAttention(q, q, q, s, true, 0.125);
    FAIL() << "a grid of 80000 blocks in z was accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("batch 2 x 40000 packed samples"), std::string::npos)
        << e.what_without_backtrace();
  }
}

// On the CPU the entry point keeps torch SDPA whatever the backend asks for.
TEST(FlashAttention, CpuEntryPointKeepsSdpa) {
  at::manual_seed(2);
  at::Tensor q = at::randn({1, 4, 33, 64}), k = at::randn({1, 2, 33, 64}), v = at::randn({1, 2, 33, 64});
  AttentionMask mask;
  EXPECT_TRUE(at::equal(Attention(q, k, v, mask, 0.125, AttentionBackend::kAgora),
                        Attention(q, k, v, mask, 0.125, AttentionBackend::kSdpa)));
}

}  // namespace
}  // namespace agora::kernels
