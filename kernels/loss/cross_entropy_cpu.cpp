#include "kernels/loss/cross_entropy_cpu.h"

#include <ATen/ATen.h>

#include "util/ignore_label.h"

namespace agora::loss::cpu {
namespace {

// Where each row's target falls in a tile of `cols` columns starting at col_offset: its column (clamped, so a gather
// stays inside the tile) and whether it is inside at all (ignored rows and other tiles' targets are not).
struct TargetInTile {
  at::Tensor column, inside;
};
TargetInTile Locate(const at::Tensor& targets, int64_t col_offset, int64_t cols) {
  const at::Tensor local = targets - col_offset;
  return {local.clamp(0, cols - 1).unsqueeze(1), local.ge(0).logical_and(local.lt(cols))};
}

}  // namespace

void FoldTile(const at::Tensor& logits, int64_t col_offset, const at::Tensor& targets, RowState& s) {
  // Rescale the running sum to the new max, add the tile's exps.
  const at::Tensor new_max = at::maximum(s.max, std::get<0>(logits.max(1)));
  s.sum_exp.mul_((s.max - new_max).exp_()).add_((logits - new_max.unsqueeze(1)).exp_().sum(1));
  s.max.copy_(new_max);
  s.sum_logits.add_(logits.sum(1));
  const TargetInTile t = Locate(targets, col_offset, logits.size(1));
  s.target_logit.copy_(at::where(t.inside, logits.gather(1, t.column).squeeze(1), s.target_logit));
}

void GradTile(at::Tensor& logits, int64_t col_offset, const at::Tensor& targets, const GradCoefficients& c,
              at::Tensor& grad) {
  logits.sub_(c.lse.unsqueeze(1)).exp_().mul_(c.p.unsqueeze(1)).sub_(c.uniform.unsqueeze(1));
  const TargetInTile t = Locate(targets, col_offset, logits.size(1));
  logits.scatter_add_(1, t.column, at::where(t.inside, -c.target, 0).unsqueeze(1));
  if (!grad.is_same(logits)) grad.copy_(logits);
}

LogitsLosses CrossEntropy(const at::Tensor& logits, const at::Tensor& targets, double label_smoothing, double z_loss) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  const at::Tensor x = logits.to(at::kFloat);
  const at::Tensor valid = targets.ne(kIgnoreLabel);
  const at::Tensor safe_targets = targets.clamp(0, vocab - 1).unsqueeze(1);
  const at::Tensor lse = x.logsumexp(1);
  const at::Tensor target_logit = x.gather(1, safe_targets).squeeze(1);
  LogitsLosses out;
  out.loss = at::where(valid, lse - (1 - label_smoothing) * target_logit - label_smoothing * x.mean(1) +
                                  z_loss * lse * lse, 0);
  out.logprob = at::where(valid, target_logit - lse, 0);
  // d loss / dx = softmax(x) (1 + 2 z lse) - (1 - smoothing) onehot - smoothing / V.
  out.grad = (x - lse.unsqueeze(1)).exp_().mul_((1 + 2 * z_loss * lse).unsqueeze(1)).sub_(label_smoothing / vocab);
  out.grad.scatter_add_(1, safe_targets, at::full({rows, 1}, -(1 - label_smoothing), out.grad.options()));
  out.grad.mul_(valid.unsqueeze(1));
  out.lse = at::where(valid, lse, 0);
  return out;
}

}  // namespace agora::loss::cpu
