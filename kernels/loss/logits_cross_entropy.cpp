// Lab code: the one-pass cross-entropy over given logits (loss_kernels.h's LaunchCrossEntropy on CUDA,
// cross_entropy_cpu.h elsewhere), the kernel the fused head loss is measured against. No recipe reaches it.
#include <ATen/ATen.h>
#include <ATen/DeviceGuard.h>
#include <ATen/cuda/CUDAContext.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/variable.h>

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

struct CrossEntropyFunction : public torch::autograd::Function<CrossEntropyFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& targets,
                               double label_smoothing, double z_loss, bool in_place) {
    const int64_t rows = logits.size(0), vocab = logits.size(1);
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
      cpu::LogitsLosses out = cpu::CrossEntropy(logits, targets, label_smoothing, z_loss);
      loss = out.loss;
      logprob = out.logprob;
      lse = out.lse;
      grad = in_place ? logits.copy_(out.grad) : out.grad.to(logits.scalar_type());
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

}  // namespace agora::loss
