// Supervised fine-tuning: the summed negative log-likelihood of every trained token (labels != kIgnoreLabel),
// normalised by the number of trained tokens.
#pragma once

#include "trainer/objective.h"

namespace agora {

class SftObjective : public Objective {
 public:
  std::string name() const override { return "sft"; }
  int64_t Denominator(const DeviceBatch& batch) const override { return batch.trained_tokens; }
  LossOutput Forward(LlamaForCausalLM& model, const DeviceBatch& batch) override;
};

// Per-token NLL of a batch, [T] fp32, 0 where untrained (position t scores labels[t], predicted at t - 1; the
// first position is never trained). Shared by the objective and by evaluation.
at::Tensor PackedTokenNll(LlamaForCausalLM& model, const DeviceBatch& batch);

}  // namespace agora
