// Stable Alignment's objective (trainer/objectives/preference_losses.h for the formula): per query, the K
// responses of its group in the batch, each scored by its mean token NLL. Normalised by the number of queries.
#pragma once

#include "trainer/objective.h"
#include "models/causal_lm_loss.h"
#include "trainer/objectives/preference_losses.h"

namespace agora {

class StableAlignmentObjective : public Objective {
 public:
  StableAlignmentObjective(const StableAlignmentOptions& options, HeadLoss head_loss)
      : options_(options), head_loss_(head_loss) {}
  std::string name() const override { return "stable_alignment"; }
  int64_t Denominator(const DeviceBatch& batch) const override { return batch.num_groups; }
  // Metrics (per query): ce_best, penalty (the hinge term), nll_gap (mean NLL of the other responses minus the
  // best's; 0 for a query with one response).
  LossOutput Forward(LlamaForCausalLM& model, const DeviceBatch& batch) override;

 private:
  StableAlignmentOptions options_;
  HeadLoss head_loss_;
};

}  // namespace agora
