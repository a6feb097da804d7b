// Per-token negative log-likelihoods of a packed batch (PackedTokenNll, what every objective builds on) and their
// per-sequence sums, for the objectives that compare whole sequences (Stable Alignment's per-response mean
// cross-entropy, DPO's sequence log-probabilities). Whichever kernel computes the per-token NLL (torch's
// cross-entropy or the fused head+loss kernel) supplies the sums too.
#pragma once

#include <ATen/core/Tensor.h>

#include "models/causal_lm_loss.h"
#include "trainer/objective.h"

namespace agora {

// Per-token NLL of a batch, [T] fp32, 0 where untrained (position t scores labels[t], predicted at t - 1; the
// first position is never trained), the head and the loss computed as `how` says. Shared by every objective.
at::Tensor PackedTokenNll(LlamaForCausalLM& model, const DeviceBatch& batch, HeadLoss how);

struct SequenceNll {
  at::Tensor sum;    // [num_samples], token_nll's dtype: the summed NLL of each sequence's trained tokens
  at::Tensor count;  // [num_samples]: its number of trained tokens
};

// token_nll: [T] fp32, 0 where untrained (PackedTokenNll). Every sequence of `batch` gets its sums.
SequenceNll PerSequenceNll(const at::Tensor& token_nll, const DeviceBatch& batch);

// Lays per-sequence values [num_samples] out by group: [num_groups, K] with K the largest group of the batch,
// `fill` where a group has fewer sequences; `valid` [num_groups, K] bool marks the real entries.
struct GroupedValues {
  at::Tensor values;
  at::Tensor valid;
};
GroupedValues ByGroup(const at::Tensor& per_sequence, const DeviceBatch& batch, double fill);

}  // namespace agora
