// The fused linear + cross-entropy's autograd binding: argument checks, and the driver that walks the vocabulary
// tiles (the logits GEMM by cuBLAS or ATen, each tile's fold and gradient by loss_kernels.h or cross_entropy_cpu.h).
// The algorithm and its cost model: NOTES.md.
#include <algorithm>
#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/DeviceGuard.h>
#include <ATen/cuda/CUDAContext.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/loss/cross_entropy.h"
#include "kernels/loss/cross_entropy_cpu.h"
#include "kernels/loss/loss_binding.h"
#include "kernels/loss/loss_kernels.h"
#include "util/ignore_label.h"

namespace agora::loss {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
namespace kn = agora::kernels;

// out (float32) = a @ b, or out += a @ b. On CUDA, half-precision operands stay half precision (tensor cores)
// with fp32 accumulation and an fp32 result; elsewhere the operands are upcast.
void MatmulFloat(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, bool accumulate) {
  if (a.is_cuda() && a.scalar_type() == b.scalar_type() && a.scalar_type() != at::kFloat) {
    if (accumulate) {  // addmm.dtype_out with an fp32 `self` (accepted by torch's CUDA addmm since 2.8)
      at::addmm_out(out, out, a, b, at::kFloat);
    } else {
      at::mm_out(out, a, b, at::kFloat);
    }
    return;
  }
  const at::Tensor af = a.to(at::kFloat), bf = b.to(at::kFloat);
  if (accumulate) {
    out.addmm_(af, bf);
  } else {
    at::mm_out(out, af, bf);
  }
}

// out = (a @ b) * unscale in out's dtype: fp32 accumulation inside the GEMM when all three share a dtype and there is
// nothing to unscale; otherwise an fp32 product, unscaled (a 0-d fp32 tensor) before rounding once.
void MatmulInto(at::Tensor out, const at::Tensor& a, const at::Tensor& b, const at::Tensor& unscale) {
  if (!unscale.defined() && a.scalar_type() == out.scalar_type() && b.scalar_type() == out.scalar_type()) {
    at::mm_out(out, a, b);
    return;
  }
  at::Tensor product = at::empty(out.sizes(), out.options().dtype(at::kFloat));
  MatmulFloat(product, a, b, false);
  if (unscale.defined()) product.mul_(unscale);
  out.copy_(product);
}

// fp16's smallest subnormal is 6e-8, and a mean loss makes the gradient tile's entries a_i p_ij about 1 / (N V)
// (5e-10 at N = 16k, V = 128k): written as they are, they round to zero and the head's gradient loses every word
// nobody targets. So an fp16 tile is written scaled by a power of two that brings the largest coefficient to 2^12
// (|entries| <= |a| + |b| + |c|, so at most 3 * 2^12, far from fp16's 65504; a power of two changes no mantissa
// bit), and the GEMMs' fp32 results are multiplied back. Returns the 0-d fp32 factor to multiply back, computed on
// the device (no host sync); undefined for bf16 and fp32, which share fp32's range.
at::Tensor ScaleForHalfTile(GradCoefficients& c, at::ScalarType grad_type) {
  if (grad_type != at::kHalf || c.p.numel() == 0) return at::Tensor();
  const at::Tensor largest = at::stack({c.p.abs().max(), c.target.abs().max(), c.uniform.abs().max()}).max();
  const at::Tensor scale = at::where(largest > 0, at::exp2(12 - at::floor(at::log2(largest))), 1.0);
  c.p = c.p * scale;
  c.target = c.target * scale;
  c.uniform = c.uniform * scale;
  return scale.reciprocal();
}

// Vocabulary columns per tile: the option, or the widest multiple of 128 whose fp32 logits fit the byte budget.
int64_t TileWidth(int64_t vocab_tile, int64_t tile_bytes, int64_t rows, int64_t vocab) {
  if (vocab_tile > 0) return std::min(vocab_tile, vocab);
  const int64_t fit = tile_bytes / std::max<int64_t>(rows * 4, 1);
  return std::clamp(fit / 128 * 128, std::min<int64_t>(128, vocab), vocab);
}

// One tile's step on the device the tile lives on: the kernels of loss_kernels.h on CUDA, cross_entropy_cpu.h
// elsewhere.
void FoldTile(const at::Tensor& logits, int64_t col_offset, const at::Tensor& targets, RowState& s) {
  if (!logits.is_cuda()) return cpu::FoldTile(logits, col_offset, targets, s);
  const kn::LogitsTile tile{logits.data_ptr<float>(), logits.size(0), logits.size(1), col_offset,
                            targets.data_ptr<int64_t>()};
  const kn::LseState state{s.max.data_ptr<float>(), s.sum_exp.data_ptr<float>(), s.sum_logits.data_ptr<float>(),
                           s.target_logit.data_ptr<float>()};
  CheckLaunch(kn::LaunchLseTileUpdate(tile, state, at::cuda::getCurrentCUDAStream()), "LseTileUpdate");
}

// Turns a tile of logits into d(sum of the outputs' gradients · outputs) / d logits, written into `grad` (which
// is `logits` itself for float32 inputs).
void GradTile(at::Tensor& logits, int64_t col_offset, const at::Tensor& targets, const GradCoefficients& c,
              at::Tensor& grad) {
  if (!logits.is_cuda()) return cpu::GradTile(logits, col_offset, targets, c, grad);
  const kn::LogitsTile tile{logits.data_ptr<float>(), logits.size(0), logits.size(1), col_offset,
                            targets.data_ptr<int64_t>()};
  const kn::GradTileParams params{c.lse.data_ptr<float>(), c.p.data_ptr<float>(), c.target.data_ptr<float>(),
                                  c.uniform.data_ptr<float>(), grad.data_ptr(), KernelDType(grad.scalar_type())};
  CheckLaunch(kn::LaunchGradTile(tile, params, at::cuda::getCurrentCUDAStream()), "GradTile");
}

struct LinearCrossEntropyFunction : public torch::autograd::Function<LinearCrossEntropyFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                               const at::Tensor& targets, double label_smoothing, double z_loss, int64_t vocab_tile,
                               int64_t tile_bytes) {
    const int64_t rows = hidden.size(0), vocab = weight.size(0);
    const at::Tensor h = hidden.contiguous(), w = weight.contiguous();
    const at::TensorOptions f32 = h.options().dtype(at::kFloat);
    RowState s{at::full({rows}, -std::numeric_limits<float>::infinity(), f32), at::zeros({rows}, f32),
               at::zeros({rows}, f32), at::zeros({rows}, f32)};
    const int64_t tile = TileWidth(vocab_tile, tile_bytes, rows, vocab);
    at::Tensor buffer = at::empty({rows * tile}, f32);
    for (int64_t v0 = 0; v0 < vocab; v0 += tile) {
      const int64_t cols = std::min(tile, vocab - v0);
      at::Tensor logits = buffer.narrow(0, 0, rows * cols).view({rows, cols});
      MatmulFloat(logits, h, w.narrow(0, v0, cols).t(), false);
      FoldTile(logits, v0, targets, s);
    }
    const at::Tensor lse = s.max + s.sum_exp.log();
    const at::Tensor valid = targets.ne(kIgnoreLabel);
    const at::Tensor loss = lse - (1 - label_smoothing) * s.target_logit -
                            (label_smoothing / vocab) * s.sum_logits + z_loss * lse * lse;
    std::vector<at::Tensor> out{at::where(valid, loss, 0), at::where(valid, s.target_logit - lse, 0),
                                at::where(valid, lse, 0)};
    ctx->mark_non_differentiable({out[2]});
    ctx->save_for_backward({hidden, weight, targets, lse});
    ctx->saved_data["label_smoothing"] = label_smoothing;
    ctx->saved_data["z_loss"] = z_loss;
    ctx->saved_data["tile"] = tile;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& targets = saved[2];
    const at::Tensor& lse = saved[3];
    const double eps = ctx->saved_data["label_smoothing"].toDouble();
    const double z = ctx->saved_data["z_loss"].toDouble();
    const bool need_hidden = ctx->needs_input_grad(0), need_weight = ctx->needs_input_grad(1);
    const at::Tensor h = saved[0].contiguous(), w = saved[1].contiguous();
    const int64_t rows = h.size(0), vocab = w.size(0);
    const at::OptionalDeviceGuard guard(at::device_of(h));

    // d loss / dx = p (1 + 2 z lse) - (1 - eps) onehot - eps / V; d logprob / dx = onehot - p.
    const at::Tensor zero = at::zeros({rows}, lse.options());
    const at::Tensor g_loss = grads[0].defined() ? grads[0].to(at::kFloat) : zero;
    const at::Tensor g_logprob = grads[1].defined() ? grads[1].to(at::kFloat) : zero;
    const at::Tensor valid = targets.ne(kIgnoreLabel);
    GradCoefficients c{lse, at::where(valid, g_loss * (1 + 2 * z * lse) - g_logprob, 0),
                       at::where(valid, g_loss * (1 - eps) - g_logprob, 0), at::where(valid, g_loss * (eps / vocab), 0)};

    // The gradient tile takes the inputs' dtype, so on CUDA both GEMMs run on tensor cores (the CPU path follows
    // the same dtypes, so its tests see the same rounding); for fp32 it is the logits tile itself.
    const at::ScalarType grad_type = h.scalar_type();
    const at::Tensor unscale = ScaleForHalfTile(c, grad_type);
    const bool separate = grad_type != at::kFloat;
    const int64_t tile = ctx->saved_data["tile"].toInt();
    at::Tensor buffer = at::empty({rows * tile}, lse.options());
    at::Tensor grad_buffer = separate ? at::empty({rows * tile}, h.options().dtype(grad_type)) : buffer;
    at::Tensor grad_hidden = need_hidden ? at::zeros({rows, h.size(1)}, lse.options()) : at::Tensor();
    at::Tensor grad_weight = need_weight ? at::empty_like(w) : at::Tensor();
    for (int64_t v0 = 0; v0 < vocab; v0 += tile) {
      const int64_t cols = std::min(tile, vocab - v0);
      const at::Tensor w_tile = w.narrow(0, v0, cols);
      at::Tensor logits = buffer.narrow(0, 0, rows * cols).view({rows, cols});
      at::Tensor grad = grad_buffer.narrow(0, 0, rows * cols).view({rows, cols});
      MatmulFloat(logits, h, w_tile.t(), false);
      GradTile(logits, v0, targets, c, grad);
      if (need_hidden) MatmulFloat(grad_hidden, grad, w_tile, true);
      if (need_weight) MatmulInto(grad_weight.narrow(0, v0, cols), grad.t(), h, unscale);
    }
    if (need_hidden && unscale.defined()) grad_hidden.mul_(unscale);
    return {need_hidden ? grad_hidden.to(h.scalar_type()) : at::Tensor(), grad_weight, at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

TokenLosses LinearCrossEntropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                               const CrossEntropyOptions& options) {
  constexpr const char* kFn = "LinearCrossEntropy";
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1), kFn,
              ": expected hidden [N, D] and weight [V, D], got ", hidden.sizes(), " and ", weight.sizes());
  TORCH_CHECK(weight.size(0) > 0, kFn, ": the weight has no vocabulary rows");
  CheckFloatType(hidden, kFn, "hidden");
  TORCH_CHECK(weight.scalar_type() == hidden.scalar_type(), kFn, ": weight is ", weight.scalar_type(),
              " but hidden is ", hidden.scalar_type());
  TORCH_CHECK(weight.device() == hidden.device(), kFn, ": weight is on ", weight.device(), ", hidden on ",
              hidden.device());
  CheckOptions(options, kFn);
  CheckTargets(targets, hidden.size(0), weight.size(0), hidden.device(), kFn);
  const at::OptionalDeviceGuard guard(at::device_of(hidden));
  variable_list out = LinearCrossEntropyFunction::apply(hidden, weight, targets.contiguous(), options.label_smoothing,
                                                        options.z_loss, options.vocab_tile, options.tile_bytes);
  return {out[0], out[1], out[2]};
}

at::Tensor MeanOverTargets(const at::Tensor& token_loss, const at::Tensor& targets) {
  return token_loss.sum() / targets.ne(kIgnoreLabel).sum().clamp_min(1);
}

}  // namespace agora::loss
