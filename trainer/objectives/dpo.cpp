#include "trainer/objectives/dpo.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "models/lora.h"
#include "trainer/objectives/preference_losses.h"
#include "trainer/objectives/sequence_nll.h"

namespace agora {

LossOutput DpoObjective::Forward(LlamaForCausalLM& model, const DeviceBatch& batch) {
  at::Tensor token_nll = PackedTokenNll(model, batch, head_loss_);
  at::Tensor policy = -PerSequenceNll(token_nll, batch).sum;  // [S] summed log-probabilities
  at::Tensor reference;
  {
    at::NoGradGuard no_grad;
    if (reference_) {
      reference = -PerSequenceNll(PackedTokenNll(reference_, batch, head_loss_), batch).sum;
    } else {
      LoraAdaptersDisabled base(model);
      reference = -PerSequenceNll(PackedTokenNll(model, batch, head_loss_), batch).sum;
    }
  }
  // Pairs are groups of two: column 0 chosen, column 1 rejected (the loader's order).
  at::Tensor pi = ByGroup(policy, batch, 0.0).values;
  at::Tensor ref = ByGroup(reference, batch, 0.0).values;
  TORCH_CHECK(pi.size(1) == 2 && batch.num_samples == 2 * batch.num_groups,
              "dpo: every group of the batch must be a (chosen, rejected) pair");
  at::Tensor loss = DpoLoss(pi.select(1, 0), pi.select(1, 1), ref.select(1, 0), ref.select(1, 1), beta_);

  at::Tensor loss_sum = loss.sum();
  at::NoGradGuard no_grad;
  at::Tensor chosen = beta_ * (pi.select(1, 0) - ref.select(1, 0));
  at::Tensor rejected = beta_ * (pi.select(1, 1) - ref.select(1, 1));
  at::Tensor margin = chosen - rejected;
  return LossOutput{loss_sum,
                    token_nll.sum().detach(),
                    {{"chosen_reward", chosen.sum()},
                     {"rejected_reward", rejected.sum()},
                     {"reward_margin", margin.sum()},
                     {"reward_accuracy", margin.gt(0).sum()}}};
}

}  // namespace agora
