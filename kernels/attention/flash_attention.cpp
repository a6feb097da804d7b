#include "kernels/attention/flash_attention.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/attention/flash_attention_launch.h"

namespace agora::kernels {
namespace {

bool SupportedHeadDim(int64_t d) { return d == 64 || d == 128; }

void CheckSame(const at::Tensor& t, const char* name, const at::Tensor& q) {
  TORCH_CHECK(t.defined() && t.dim() == 4, "FlashAttention: ", name, " must be a 4-d [B, H, S, D] tensor");
  TORCH_CHECK(t.scalar_type() == q.scalar_type(), "FlashAttention: ", name, " is ", t.scalar_type(),
              " but q is ", q.scalar_type());
  TORCH_CHECK(t.device() == q.device(), "FlashAttention: ", name, " is on ", t.device(), " but q is on ", q.device());
  TORCH_CHECK(t.size(0) == q.size(0) && t.size(2) == q.size(2) && t.size(3) == q.size(3), "FlashAttention: ", name,
              " ", t.sizes(), " does not match q ", q.sizes(), " in batch, sequence length or head dim");
}

// The kernels read 16-byte vectors along the head dim: its elements contiguous, every row start 16-byte aligned.
void CheckLayout(const at::Tensor& t, const char* name) {
  const int64_t vec = 16 / t.element_size();
  TORCH_CHECK(t.stride(3) == 1 && t.stride(0) % vec == 0 && t.stride(1) % vec == 0 && t.stride(2) % vec == 0 &&
                  reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0,
              "FlashAttention: ", name, " needs a contiguous head dim and 16-byte aligned rows, got strides ",
              t.strides());
}

// The checks every entry shares, the device last (so the shape checks can be tested anywhere).
void CheckInputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const PackedSamples& samples) {
  TORCH_CHECK(q.defined() && q.dim() == 4, "FlashAttention: q must be a 4-d [B, H, S, D] tensor");
  TORCH_CHECK(SupportedHeadDim(q.size(3)), "FlashAttention: head dim ", q.size(3),
              " is not supported (the kernels are built for 64 and 128); use model.attention=sdpa");
  TORCH_CHECK(q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf,
              "FlashAttention: q must be bfloat16 or float16, got ", q.scalar_type());
  CheckSame(k, "k", q);
  CheckSame(v, "v", q);
  TORCH_CHECK(k.sizes() == v.sizes(), "FlashAttention: k ", k.sizes(), " and v ", v.sizes(), " differ");
  TORCH_CHECK(q.size(1) % k.size(1) == 0, "FlashAttention: query heads (", q.size(1),
              ") must be a multiple of key/value heads (", k.size(1), ")");
  TORCH_CHECK(q.size(0) * q.size(1) * q.size(2) * q.size(3) < (int64_t{1} << 31), "FlashAttention: q ", q.sizes(),
              " is too large for 32-bit sample offsets");
  TORCH_CHECK(q.size(0) * samples.count <= kMaxGridBlocksYZ && q.size(1) <= kMaxGridBlocksYZ,
              "FlashAttention: batch ", q.size(0), " x ", samples.count, " packed samples and ", q.size(1),
              " query heads: the kernels' grid needs both within CUDA's limit of ", kMaxGridBlocksYZ,
              " blocks; pack the samples into one row or split the batch");
  TORCH_CHECK(!samples.device_offsets.defined() || samples.device_offsets.device() == q.device(),
              "FlashAttention: the packed samples' offsets are on ", samples.device_offsets.device(), " but q is on ",
              q.device());
  TORCH_CHECK(q.is_cuda(), "FlashAttention: q must be a CUDA tensor, got one on ", q.device());
}

// The strides of a tensor seen as [B, H, S, D] (the binding's shapes), for FlashAttentionParams.
Strides BhsdStrides(const at::Tensor& t) { return {t.stride(0), t.stride(2), t.stride(1)}; }

FlashAttentionParams Pack(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const PackedSamples& samples,
                          bool causal, double scale) {
  FlashAttentionParams p;
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.q_strides = BhsdStrides(q);
  p.k_strides = BhsdStrides(k);
  p.v_strides = BhsdStrides(v);
  p.batch = static_cast<int>(q.size(0));
  p.heads_q = static_cast<int>(q.size(1));
  p.heads_kv = static_cast<int>(k.size(1));
  p.seqlen = static_cast<int>(q.size(2));
  p.head_dim = static_cast<int>(q.size(3));
  p.cu_seqlens = samples.device_offsets.defined() ? samples.device_offsets.data_ptr<int32_t>() : nullptr;
  p.num_samples = static_cast<int>(samples.count);
  p.max_seqlen = static_cast<int>(samples.device_offsets.defined() ? samples.max_len : q.size(2));
  p.scale = static_cast<float>(scale);
  p.causal = causal;
  return p;
}

template <int HeadDim>
cudaError_t Dispatch(bool forward, at::ScalarType dtype, const FlashAttentionParams& p, cudaStream_t stream) {
  if (dtype == at::kBFloat16)
    return forward ? LaunchFlashForward<Element::kBFloat16, HeadDim>(p, stream)
                   : LaunchFlashBackward<Element::kBFloat16, HeadDim>(p, stream);
  return forward ? LaunchFlashForward<Element::kFloat16, HeadDim>(p, stream)
                 : LaunchFlashBackward<Element::kFloat16, HeadDim>(p, stream);
}

void Launch(bool forward, const at::Tensor& q, const FlashAttentionParams& p) {
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream(q.device().index()).stream();
  const cudaError_t e = q.size(3) == 64 ? Dispatch<64>(forward, q.scalar_type(), p, stream)
                                        : Dispatch<128>(forward, q.scalar_type(), p, stream);
  TORCH_CHECK(e == cudaSuccess, "FlashAttention: ", forward ? "forward" : "backward", " launch failed: ",
              cudaGetErrorString(e));
}

void CheckOutput(const at::Tensor& t, const char* name, const at::Tensor& like) {
  TORCH_CHECK(t.defined() && t.sizes() == like.sizes() && t.scalar_type() == like.scalar_type() &&
                  t.device() == like.device(),
              "FlashAttention: ", name, " must be ", like.scalar_type(), " ", like.sizes(), " on ", like.device());
  CheckLayout(t, name);
}

void CheckLse(const at::Tensor& lse, const at::Tensor& q) {
  TORCH_CHECK(lse.defined() && lse.scalar_type() == at::kFloat && lse.is_contiguous() && lse.device() == q.device() &&
                  lse.sizes() == at::IntArrayRef({q.size(0), q.size(1), q.size(2)}),
              "FlashAttention: lse must be a contiguous float32 [", q.size(0), ", ", q.size(1), ", ", q.size(2),
              "] tensor on ", q.device());
}

void ForwardImpl(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const PackedSamples& samples,
                 bool causal, double scale, const at::Tensor& out, const at::Tensor& lse) {
  CheckLayout(q, "q");
  CheckLayout(k, "k");
  CheckLayout(v, "v");
  CheckOutput(out, "out", q);
  CheckLse(lse, q);
  FlashAttentionParams p = Pack(q, k, v, samples, causal, scale);
  p.o = out.data_ptr();
  p.o_strides = BhsdStrides(out);
  p.lse = lse.data_ptr<float>();
  Launch(/*forward=*/true, q, p);
}

void BackwardImpl(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& out,
                  const at::Tensor& lse, const at::Tensor& dout, const PackedSamples& samples, bool causal,
                  double scale, const at::Tensor& dq, const at::Tensor& dk, const at::Tensor& dv) {
  CheckLayout(q, "q");
  CheckLayout(k, "k");
  CheckLayout(v, "v");
  CheckOutput(out, "out", q);
  CheckOutput(dout, "dout", q);
  CheckLse(lse, q);
  CheckOutput(dq, "dq", q);
  CheckOutput(dk, "dk", k);
  CheckOutput(dv, "dv", v);
  // Scratch: delta = rowsum(dout * out) like lse; dq summed over key tiles in fp32, [B, S, Hq, D] contiguous.
  at::Tensor delta = at::empty_like(lse);
  at::Tensor dq_accum = at::zeros({q.size(0), q.size(2), q.size(1), q.size(3)}, q.options().dtype(at::kFloat));
  FlashAttentionParams p = Pack(q, k, v, samples, causal, scale);
  p.o = out.data_ptr();
  p.o_strides = BhsdStrides(out);
  p.lse = lse.data_ptr<float>();
  p.dout = dout.data_ptr();
  p.dout_strides = BhsdStrides(dout);
  p.dq = dq.data_ptr();
  p.dk = dk.data_ptr();
  p.dv = dv.data_ptr();
  p.dq_strides = BhsdStrides(dq);
  p.dk_strides = BhsdStrides(dk);
  p.dv_strides = BhsdStrides(dv);
  p.delta = delta.data_ptr<float>();
  p.dq_accum = dq_accum.data_ptr<float>();
  Launch(/*forward=*/false, q, p);
}

// A tensor the kernels can read: itself, or a [B, H, S, D]-contiguous copy when its layout does not fit.
at::Tensor Readable(const at::Tensor& t) {
  const int64_t vec = 16 / t.element_size();
  const bool fits = t.stride(3) == 1 && t.stride(0) % vec == 0 && t.stride(1) % vec == 0 && t.stride(2) % vec == 0 &&
                    reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
  return fits ? t : t.contiguous();
}

// [B, H, S, D] in shape, [B, S, H, D] in memory: what the model's output projection reads without a copy.
at::Tensor EmptyLike(const at::Tensor& t) {
  return at::empty({t.size(0), t.size(2), t.size(1), t.size(3)}, t.options()).transpose(1, 2);
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct FlashAttentionFunction : torch::autograd::Function<FlashAttentionFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q_in, const at::Tensor& k_in,
                            const at::Tensor& v_in, const PackedSamples& samples, bool causal, double scale) {
    const at::Tensor q = Readable(q_in), k = Readable(k_in), v = Readable(v_in);
    at::Tensor out = EmptyLike(q);
    at::Tensor lse = at::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(at::kFloat));
    ForwardImpl(q, k, v, samples, causal, scale, out, lse);
    ctx->save_for_backward({q, k, v, out, lse, samples.device_offsets});
    ctx->saved_data["count"] = samples.count;
    ctx->saved_data["max_len"] = samples.max_len;
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4];
    PackedSamples samples;
    samples.device_offsets = saved[5];
    samples.count = ctx->saved_data["count"].toInt();
    samples.max_len = ctx->saved_data["max_len"].toInt();
    const c10::cuda::CUDAGuard guard(q.device());
    at::Tensor dq = EmptyLike(q), dk = EmptyLike(k), dv = EmptyLike(v);
    BackwardImpl(q, k, v, out, lse, Readable(grads[0]), samples, ctx->saved_data["causal"].toBool(),
                 ctx->saved_data["scale"].toDouble(), dq, dk, dv);
    return {dq, dk, dv, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

bool FlashAttentionSupports(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const at::ScalarType t = q.scalar_type();
  return q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && q.is_cuda() && (t == at::kBFloat16 || t == at::kHalf) &&
         k.scalar_type() == t && v.scalar_type() == t && SupportedHeadDim(q.size(3)) && k.size(3) == q.size(3) &&
         k.size(2) == q.size(2) && k.sizes() == v.sizes() && q.size(1) % k.size(1) == 0;
}

PackedSamples PreparePackedSamples(const at::Tensor& cu_seqlens, int64_t seqlen, const at::Device& device) {
  PackedSamples s;
  if (!cu_seqlens.defined()) return s;
  TORCH_CHECK(cu_seqlens.dim() == 1 && cu_seqlens.numel() >= 2 &&
                  (cu_seqlens.scalar_type() == at::kInt || cu_seqlens.scalar_type() == at::kLong),
              "FlashAttention: cu_seqlens must be a 1-d int32/int64 tensor of at least 2 offsets, got ",
              cu_seqlens.scalar_type(), " ", cu_seqlens.sizes());
  const at::Tensor host = cu_seqlens.to(at::kCPU, at::kLong).contiguous();
  const int64_t* cu = host.data_ptr<int64_t>();
  const int64_t n = host.numel();
  TORCH_CHECK(cu[0] == 0 && cu[n - 1] == seqlen, "FlashAttention: cu_seqlens must run from 0 to the sequence length ",
              seqlen, ", got ", host);
  for (int64_t i = 0; i + 1 < n; ++i) {
    TORCH_CHECK(cu[i + 1] > cu[i], "FlashAttention: cu_seqlens must increase, got ", host);
    s.max_len = std::max(s.max_len, cu[i + 1] - cu[i]);
  }
  const at::Tensor offsets = host.to(at::kInt);
  // Pinned memory lets the copy run asynchronously on the current stream; torch's host allocator keeps the pinned
  // block alive until the copy has run.
  s.device_offsets = device.is_cuda() ? offsets.pin_memory().to(device, /*non_blocking=*/true) : offsets.to(device);
  s.count = n - 1;
  return s;
}

at::Tensor FlashAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const PackedSamples& samples,
                          bool causal, double scale) {
  CheckInputs(q, k, v, samples);
  const c10::cuda::CUDAGuard guard(q.device());
  return FlashAttentionFunction::apply(q, k, v, samples, causal, scale);
}

namespace {

// What the entry points that take raw offsets share: the offsets prepared for this call, every input checked.
PackedSamples CheckedSamples(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const at::Tensor& cu_seqlens) {
  TORCH_CHECK(q.defined() && q.dim() == 4, "FlashAttention: q must be a 4-d [B, H, S, D] tensor");
  PackedSamples samples = PreparePackedSamples(cu_seqlens, q.size(2), q.device());
  CheckInputs(q, k, v, samples);
  return samples;
}

}  // namespace

at::Tensor FlashAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& cu_seqlens,
                          bool causal, double scale) {
  const PackedSamples samples = CheckedSamples(q, k, v, cu_seqlens);
  const c10::cuda::CUDAGuard guard(q.device());
  return FlashAttentionFunction::apply(q, k, v, samples, causal, scale);
}

void FlashAttentionForward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& cu_seqlens,
                           bool causal, double scale, const at::Tensor& out, const at::Tensor& lse) {
  const PackedSamples samples = CheckedSamples(q, k, v, cu_seqlens);
  const c10::cuda::CUDAGuard guard(q.device());
  ForwardImpl(q, k, v, samples, causal, scale, out, lse);
}

void FlashAttentionBackward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& out,
                            const at::Tensor& lse, const at::Tensor& dout, const at::Tensor& cu_seqlens, bool causal,
                            double scale, const at::Tensor& dq, const at::Tensor& dk, const at::Tensor& dv) {
  const PackedSamples samples = CheckedSamples(q, k, v, cu_seqlens);
  const c10::cuda::CUDAGuard guard(q.device());
  BackwardImpl(q, k, v, out, lse, dout, samples, causal, scale, dq, dk, dv);
}

}  // namespace agora::kernels
