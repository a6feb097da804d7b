#include "models/causal_lm_loss.h"

#include <ATen/ATen.h>

#include "kernels/loss/cross_entropy.h"

namespace agora {

static_assert(kIgnoreLabel == kIgnoreLabel);

at::Tensor TokenNll(const at::Tensor& logits, const at::Tensor& targets) {
  // At least fp32 (bf16/fp16 logits are promoted); float64 stays float64, for gradient checks.
  at::Tensor flat = (logits.scalar_type() == at::kDouble ? logits : logits.to(at::kFloat)).reshape({-1, logits.size(-1)});
  at::Tensor nll = at::cross_entropy_loss(flat, targets.reshape({-1}), /*weight=*/{}, at::Reduction::None, kIgnoreLabel);
  return nll.view(targets.sizes());
}

at::Tensor CausalLmLoss(const at::Tensor& logits, const at::Tensor& labels) {
  // Shift by padding the labels with one ignored position at the end, as transformers does.
  at::Tensor targets = at::constant_pad_nd(labels, {0, 1}, kIgnoreLabel).slice(1, 1);
  at::Tensor nll = TokenNll(logits, targets);
  at::Tensor trained = targets.ne(kIgnoreLabel).sum();
  return nll.sum() / trained;
}

at::Tensor HeadTokenNll(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets, HeadLoss how) {
  if (how == HeadLoss::kFused) return loss::LinearCrossEntropy(hidden, weight, targets).loss;
  return TokenNll(at::linear(hidden, weight), targets);
}

}  // namespace agora
