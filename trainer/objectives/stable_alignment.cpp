#include "trainer/objectives/stable_alignment.h"

#include <ATen/ATen.h>

#include "trainer/objectives/sequence_nll.h"

namespace agora {

LossOutput StableAlignmentObjective::Forward(LlamaForCausalLM& model, const DeviceBatch& batch) {
  at::Tensor token_nll = PackedTokenNll(model, batch, head_loss_);
  SequenceNll nll = PerSequenceNll(token_nll, batch);
  GroupedValues ce = ByGroup(nll.sum / nll.count, batch, 0.0);
  GroupedValues scores = ByGroup(batch.sequence_score, batch, 0.0);
  at::Tensor penalty;
  at::Tensor loss = StableAlignmentLoss(ce.values, scores.values, ce.valid, options_, &penalty);

  // nll_gap: how much less likely the other responses are than the best one, per query.
  at::Tensor loss_sum = loss.sum();
  at::NoGradGuard no_grad;
  const auto [best, others] = SelectBestResponse(scores.values, ce.valid);
  at::Tensor n_others = others.sum(1);
  at::Tensor mean_others =
      at::where(others, ce.values, at::zeros_like(ce.values)).sum(1) / n_others.clamp_min(1).to(at::kFloat);
  at::Tensor gap = at::where(n_others.gt(0), mean_others - ce.values.gather(1, best).squeeze(1),
                             at::zeros_like(mean_others));
  return LossOutput{loss_sum,
                    token_nll.sum().detach(),
                    {{"ce_best", ce.values.gather(1, best).sum()},
                     {"penalty", penalty.sum()},
                     {"nll_gap", gap.sum()}}};
}

}  // namespace agora
