#include "trainer/objectives/preference_losses.h"

#include <limits>

#include <ATen/ATen.h>

namespace agora {

BestResponse SelectBestResponse(const at::Tensor& scores, const at::Tensor& valid) {
  // Invalid entries rated -inf never win; argmax returns the first of equals.
  at::Tensor best = at::where(valid, scores, -std::numeric_limits<double>::infinity()).argmax(1, /*keepdim=*/true);
  return {best, valid.clone().scatter_(1, best, false)};
}

at::Tensor StableAlignmentLoss(const at::Tensor& ce, const at::Tensor& scores, const at::Tensor& valid,
                               const StableAlignmentOptions& options, at::Tensor* penalty) {
  const auto [best, others] = SelectBestResponse(scores, valid);
  at::Tensor ce_best = ce.gather(1, best);  // [G, 1]
  at::Tensor score_best = scores.gather(1, best);
  at::Tensor d = ce_best - ce + (score_best - scores) / options.rating_scale * options.margin;
  at::Tensor n_others = others.sum(1);
  // Masked mean over the others; a group with a single response has no hinge term (0, not 0/0).
  at::Tensor mean_d = at::where(others, d, at::zeros_like(d)).sum(1) / n_others.clamp_min(1).to(d.scalar_type());
  at::Tensor hinge = at::where(n_others.gt(0), at::relu(mean_d), at::zeros_like(mean_d));
  if (penalty != nullptr) *penalty = hinge;
  return ce_best.squeeze(1) + options.ratio * hinge;
}

at::Tensor DpoLoss(const at::Tensor& policy_chosen, const at::Tensor& policy_rejected, const at::Tensor& ref_chosen,
                   const at::Tensor& ref_rejected, double beta) {
  at::Tensor margin = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected));
  return -at::log_sigmoid(margin);
}

}  // namespace agora
