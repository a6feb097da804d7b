// Supervised fine-tuning: the summed negative log-likelihood of every trained token (labels != kIgnoreLabel),
// normalised by the number of trained tokens.
#pragma once

#include "trainer/objective.h"
#include "trainer/objectives/sequence_nll.h"

namespace agora {

class SftObjective : public Objective {
 public:
  // head_loss: how the head and the loss are computed (the recipe's `loss` key).
  explicit SftObjective(HeadLoss head_loss) : head_loss_(head_loss) {}
  std::string name() const override { return "sft"; }
  int64_t Denominator(const DeviceBatch& batch) const override { return batch.trained_tokens; }
  LossOutput Forward(LlamaForCausalLM& model, const DeviceBatch& batch) override;

 private:
  HeadLoss head_loss_;
};

}  // namespace agora
