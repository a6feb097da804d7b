// Test support shared by the CPU lab test and the GPU kernel test: random inputs in the model's [B, S, H, D] memory
// layout, and the float64 textbook answer (output, log-sum-exp, gradients by autograd) they are both checked against.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include "kernels/attention/flash_attention_params.h"
#include "kernels/reference/attention_reference.h"
#include "tests/test_util.h"

namespace agora::kernels::testing {

struct Case {
  int batch, heads_q, heads_kv, seqlen, head_dim;
  bool causal;
  std::vector<int32_t> cu_seqlens;  // empty: each batch row is one sample
};

// [B, S, H, D] tensors (what the model's projections produce); the kernels read them through strides.
struct Inputs {
  at::Tensor q, k, v, dout;  // dout: like q
};

inline Inputs RandomInputs(const Case& c, at::ScalarType dtype, const at::Device& device, uint64_t seed) {
  at::manual_seed(seed);
  auto opts = at::TensorOptions().dtype(at::kFloat);
  auto make = [&](int heads) { return at::randn({c.batch, c.seqlen, heads, c.head_dim}, opts).to(device, dtype); };
  Inputs x;
  x.q = make(c.heads_q);
  x.k = make(c.heads_kv);
  x.v = make(c.heads_kv);
  x.dout = make(c.heads_q);
  return x;
}

// The strides of a tensor laid out [B, S, H, D] (the inputs above), for FlashAttentionParams.
inline Strides BshdStrides(const at::Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2)}; }

// The float64 answer: out [B, S, Hq, D], lse [B, Hq, S], dq/dk/dv like q/k/v.
struct Expected {
  at::Tensor out, lse, dq, dk, dv;
};

// allowed[b, 0, i, j]: query i sees key j, from loops over the definition (samples of cu_seqlens, causal).
inline at::Tensor AllowedMask(const Case& c) {
  std::vector<int32_t> cu = c.cu_seqlens.empty() ? std::vector<int32_t>{0, c.seqlen} : c.cu_seqlens;
  std::vector<int32_t> sample(c.seqlen);
  for (size_t s = 0; s + 1 < cu.size(); ++s)
    for (int32_t pos = cu[s]; pos < cu[s + 1]; ++pos) sample[pos] = static_cast<int32_t>(s);
  at::Tensor allowed = at::zeros({c.seqlen, c.seqlen}, at::kBool);
  auto a = allowed.accessor<bool, 2>();
  for (int i = 0; i < c.seqlen; ++i)
    for (int j = 0; j < c.seqlen; ++j) a[i][j] = sample[i] == sample[j] && (!c.causal || j <= i);
  return allowed.view({1, 1, c.seqlen, c.seqlen});
}

// reference::MathAttention on the inputs as float64 leaves, its gradients by autograd.
inline Expected MathAttention64(const Case& c, const Inputs& x, double scale) {
  // [B, S, H, D] -> [B, H, S, D] float64 leaves on the CPU.
  auto leaf = [](const at::Tensor& t) {
    return t.to(at::kCPU, at::kDouble).transpose(1, 2).contiguous().set_requires_grad(true);
  };
  at::Tensor q = leaf(x.q), k = leaf(x.k), v = leaf(x.v);
  Expected e;
  at::Tensor out = reference::MathAttention(q, k, v, AllowedMask(c), scale, &e.lse);
  at::Tensor dout = x.dout.to(at::kCPU, at::kDouble).transpose(1, 2);
  auto grads = torch::autograd::grad({out}, {q, k, v}, {dout});
  e.out = out.detach().transpose(1, 2);
  e.dq = grads[0].transpose(1, 2);
  e.dk = grads[1].transpose(1, 2);
  e.dv = grads[2].transpose(1, 2);
  return e;
}

// The correctness bar's error measure, shared with every other test.
using ::agora::testing::RelativeError;

// Every shape the tests sweep for one head dim: grouped-query and plain heads, lengths that are not multiples of
// any tile, a ragged packed batch (one sample shorter than a tile, one of a single token, one spanning tiles).
inline std::vector<Case> SweepCases(int head_dim) {
  std::vector<Case> cases;
  for (bool causal : {true, false}) {
    cases.push_back({2, 4, 2, 77, head_dim, causal, {}});            // GQA 2:1, one partial tile
    cases.push_back({1, 6, 2, 150, head_dim, causal, {}});           // GQA 3:1, tiles 64+64+22
    cases.push_back({1, 2, 2, 64, head_dim, causal, {}});            // exactly one tile, MHA
    cases.push_back({1, 4, 1, 203, head_dim, causal, {0, 1, 40, 141, 203}});  // packed: 1, 39, 101, 62 tokens
  }
  return cases;
}

}  // namespace agora::kernels::testing
