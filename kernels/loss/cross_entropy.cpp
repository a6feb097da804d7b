// The autograd bindings of the cross-entropy kernels: argument checks, the vocabulary-tile driver of the fused
// linear + cross-entropy, and the CPU path, which runs the kernels' per-tile math as ATen ops (so the CPU tests
// check the tiling algorithm itself against float64 torch).
#include "kernels/loss/cross_entropy.h"

#include <algorithm>
#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/DeviceGuard.h>
#include <ATen/cuda/CUDAContext.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/variable.h>

#include "kernels/loss/loss_kernels.h"

namespace agora::loss {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
namespace kn = agora::kernels;

kn::LossDType KernelDType(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return kn::LossDType::kFloat32;
    case at::kBFloat16: return kn::LossDType::kBFloat16;
    case at::kHalf: return kn::LossDType::kFloat16;
    default: TORCH_CHECK(false, "cross-entropy kernels: unsupported dtype ", type);
  }
}

void CheckLaunch(cudaError_t error, const char* kernel) {
  TORCH_CHECK(error == cudaSuccess, kernel, ": CUDA launch failed: ", cudaGetErrorString(error));
}

void CheckFloatType(const at::Tensor& t, const char* function, const char* name) {
  const at::ScalarType type = t.scalar_type();
  TORCH_CHECK(type == at::kFloat || type == at::kBFloat16 || type == at::kHalf, function, ": ", name,
              " must be float32, bfloat16 or float16, got ", type);
}

void CheckOptions(const CrossEntropyOptions& o, const char* function) {
  TORCH_CHECK(o.label_smoothing >= 0 && o.label_smoothing <= 1, function, ": label_smoothing must be in [0, 1], got ",
              o.label_smoothing);
  TORCH_CHECK(o.z_loss >= 0, function, ": z_loss must be >= 0, got ", o.z_loss);
  TORCH_CHECK(o.vocab_tile >= 0 && o.tile_bytes > 0, function, ": vocab_tile must be >= 0 and tile_bytes > 0");
}

// Targets are [rows] int64 on `device`, each in [0, vocab) or kIgnoreLabel. Costs one device sync; a bad target
// would otherwise read outside a row.
void CheckTargets(const at::Tensor& targets, int64_t rows, int64_t vocab, const at::Device& device,
                  const char* function) {
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == rows, function, ": targets must be [", rows, "], got ",
              targets.sizes());
  TORCH_CHECK(targets.scalar_type() == at::kLong, function, ": targets must be int64, got ", targets.scalar_type());
  TORCH_CHECK(targets.device() == device, function, ": targets are on ", targets.device(), ", the inputs on ", device);
  at::Tensor bad = targets.ne(kIgnoreLabel).logical_and(targets.lt(0).logical_or(targets.ge(vocab)));
  if (bad.any().item<bool>()) {
    const int64_t row = bad.nonzero()[0][0].item<int64_t>();
    TORCH_CHECK(false, function, ": target ", targets[row].item<int64_t>(), " of row ", row,
                " is outside the vocabulary [0, ", vocab, ") and is not the ignore index ", kIgnoreLabel);
  }
}

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

// Per-row coefficients of a tile's gradient (loss_kernels.h, GradTileParams), 0 for ignored rows.
struct GradCoefficients {
  at::Tensor lse, p, target, uniform;  // [rows] fp32
};

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

// The rows' online log-sum-exp over the tiles seen so far (loss_kernels.h, LseState).
struct RowState {
  at::Tensor max, sum_exp, sum_logits, target_logit;  // [rows] fp32
};

void FoldTile(const at::Tensor& logits, int64_t col_offset, const at::Tensor& targets, RowState& s) {
  const int64_t rows = logits.size(0), cols = logits.size(1);
  if (logits.is_cuda()) {
    const kn::LogitsTile tile{logits.data_ptr<float>(), rows, cols, col_offset, targets.data_ptr<int64_t>()};
    const kn::LseState state{s.max.data_ptr<float>(), s.sum_exp.data_ptr<float>(), s.sum_logits.data_ptr<float>(),
                             s.target_logit.data_ptr<float>()};
    CheckLaunch(kn::LaunchLseTileUpdate(tile, state, at::cuda::getCurrentCUDAStream()), "LseTileUpdate");
    return;
  }
  // The kernel's fold as ATen ops: rescale the running sum to the new max, add the tile's exps.
  const at::Tensor new_max = at::maximum(s.max, std::get<0>(logits.max(1)));
  s.sum_exp.mul_((s.max - new_max).exp_()).add_((logits - new_max.unsqueeze(1)).exp_().sum(1));
  s.max.copy_(new_max);
  s.sum_logits.add_(logits.sum(1));
  const at::Tensor local = targets - col_offset;
  const at::Tensor inside = local.ge(0).logical_and(local.lt(cols));
  const at::Tensor picked = logits.gather(1, local.clamp(0, cols - 1).unsqueeze(1)).squeeze(1);
  s.target_logit.copy_(at::where(inside, picked, s.target_logit));
}

// Turns a tile of logits into d(sum of the outputs' gradients · outputs) / d logits, written into `grad` (which
// is `logits` itself for float32 inputs).
void GradTile(at::Tensor& logits, int64_t col_offset, const at::Tensor& targets, const GradCoefficients& c,
              at::Tensor& grad) {
  const int64_t rows = logits.size(0), cols = logits.size(1);
  if (logits.is_cuda()) {
    const kn::LogitsTile tile{logits.data_ptr<float>(), rows, cols, col_offset, targets.data_ptr<int64_t>()};
    const kn::GradTileParams params{c.lse.data_ptr<float>(), c.p.data_ptr<float>(), c.target.data_ptr<float>(),
                                    c.uniform.data_ptr<float>(), grad.data_ptr(), KernelDType(grad.scalar_type())};
    CheckLaunch(kn::LaunchGradTile(tile, params, at::cuda::getCurrentCUDAStream()), "GradTile");
    return;
  }
  logits.sub_(c.lse.unsqueeze(1)).exp_().mul_(c.p.unsqueeze(1)).sub_(c.uniform.unsqueeze(1));
  const at::Tensor local = targets - col_offset;
  const at::Tensor inside = local.ge(0).logical_and(local.lt(cols));
  logits.scatter_add_(1, local.clamp(0, cols - 1).unsqueeze(1), at::where(inside, -c.target, 0).unsqueeze(1));
  if (!grad.is_same(logits)) grad.copy_(logits);
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

struct CrossEntropyFunction : public torch::autograd::Function<CrossEntropyFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& targets,
                               double label_smoothing, double z_loss, bool in_place) {
    const int64_t rows = logits.size(0), vocab = logits.size(1);
    const at::Tensor valid = targets.ne(kIgnoreLabel);
    at::Tensor loss, logprob, lse, grad;
    if (logits.is_cuda()) {
      const at::Tensor x = in_place ? logits : logits.contiguous();
      grad = in_place ? x : at::empty_like(x);
      const at::TensorOptions f32 = x.options().dtype(at::kFloat);
      loss = at::empty({rows}, f32);
      logprob = at::empty({rows}, f32);
      lse = at::empty({rows}, f32);
      const kn::CrossEntropyParams params{
          x.data_ptr(), KernelDType(x.scalar_type()), rows, vocab, x.stride(0), targets.data_ptr<int64_t>(),
          kIgnoreLabel, static_cast<float>(label_smoothing), static_cast<float>(z_loss), loss.data_ptr<float>(),
          logprob.data_ptr<float>(), lse.data_ptr<float>(), grad.data_ptr()};
      CheckLaunch(kn::LaunchCrossEntropy(params, at::cuda::getCurrentCUDAStream()), "CrossEntropy");
    } else {
      // The kernel's math as ATen ops, in fp32.
      const at::Tensor x = logits.to(at::kFloat);
      const at::Tensor safe_targets = targets.clamp(0, vocab - 1).unsqueeze(1);
      lse = x.logsumexp(1);
      const at::Tensor target_logit = x.gather(1, safe_targets).squeeze(1);
      loss = at::where(valid, lse - (1 - label_smoothing) * target_logit - label_smoothing * x.mean(1) +
                                  z_loss * lse * lse, 0);
      logprob = at::where(valid, target_logit - lse, 0);
      at::Tensor g = (x - lse.unsqueeze(1)).exp_().mul_((1 + 2 * z_loss * lse).unsqueeze(1)).sub_(label_smoothing / vocab);
      g.scatter_add_(1, safe_targets, at::full({rows, 1}, -(1 - label_smoothing), g.options()));
      g.mul_(valid.unsqueeze(1));
      lse = at::where(valid, lse, 0);
      grad = in_place ? logits.copy_(g) : g.to(logits.scalar_type());
    }
    // Anything that saved the logits for its backward must fail loudly instead of reading the gradient.
    if (in_place) torch::autograd::impl::bump_version(logits);
    ctx->saved_data["grad"] = grad;
    ctx->saved_data["used"] = false;
    ctx->mark_non_differentiable({logprob, lse});
    return {loss, logprob, lse};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(!ctx->saved_data["used"].toBool(),
                "CrossEntropy: backward through the same call twice (its gradient buffer is scaled in place)");
    ctx->saved_data["used"] = true;
    at::Tensor grad = ctx->saved_data["grad"].toTensor();
    // The kernel wrote d loss[i] / d logits[i, :]; rows only depend on their own loss, so the chain rule is a
    // per-row scaling.
    if (grads[0].defined()) {
      grad.mul_(grads[0].unsqueeze(1));
    } else {
      grad.zero_();
    }
    return {grad, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
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

TokenLosses CrossEntropy(const at::Tensor& logits, const at::Tensor& targets, const CrossEntropyOptions& options,
                         bool in_place) {
  constexpr const char* kFn = "CrossEntropy";
  TORCH_CHECK(logits.dim() == 2 && logits.size(1) > 0, kFn, ": expected logits [N, V], got ", logits.sizes());
  CheckFloatType(logits, kFn, "logits");
  TORCH_CHECK(!in_place || logits.stride(1) == 1, kFn, ": in_place needs logits with contiguous rows, got strides ",
              logits.strides());
  CheckOptions(options, kFn);
  CheckTargets(targets, logits.size(0), logits.size(1), logits.device(), kFn);
  const at::OptionalDeviceGuard guard(at::device_of(logits));
  variable_list out =
      CrossEntropyFunction::apply(logits, targets.contiguous(), options.label_smoothing, options.z_loss, in_place);
  return {out[0], out[1], out[2]};
}

at::Tensor MeanOverTargets(const at::Tensor& token_loss, const at::Tensor& targets) {
  return token_loss.sum() / targets.ne(kIgnoreLabel).sum().clamp_min(1);
}

}  // namespace agora::loss
