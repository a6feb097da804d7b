// Direct Preference Optimisation on preference pairs (trainer/objectives/preference_losses.h for the formula).
// Each pair is a group of two sequences in the batch: chosen (score 1) then rejected (score 0); their summed
// response log-probabilities come from the policy and, without gradient, from the reference model:
//   - LoRA: the policy itself with its adapters switched off (LoraAdaptersDisabled) — the base model is the
//     reference, at the cost of one more forward pass and no extra memory;
//   - full fine-tuning: a frozen copy of the starting weights, which costs one more model in memory (14 GB for a
//     7B model in bf16).
// Normalised by the number of pairs.
#pragma once

#include "models/causal_lm_loss.h"
#include "trainer/objective.h"

namespace agora {

class DpoObjective : public Objective {
 public:
  // `frozen_reference`: null for LoRA runs (the adapters are disabled instead).
  DpoObjective(double beta, HeadLoss head_loss, LlamaForCausalLM frozen_reference)
      : beta_(beta), head_loss_(head_loss), reference_(std::move(frozen_reference)) {}
  std::string name() const override { return "dpo"; }
  int64_t Denominator(const DeviceBatch& batch) const override { return batch.num_groups; }
  // Metrics (per pair), as TRL names them without the "rewards/" prefix: chosen_reward, rejected_reward,
  // reward_margin (beta times the log-ratio differences) and reward_accuracy (the fraction with margin > 0).
  LossOutput Forward(LlamaForCausalLM& model, const DeviceBatch& batch) override;

 private:
  double beta_;
  HeadLoss head_loss_;
  LlamaForCausalLM reference_;
};

}  // namespace agora
