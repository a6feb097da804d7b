// The losses of the comparison objectives as plain tensor functions, vectorised over a batch of groups, so tests
// can hold them against the formulas directly.
#pragma once

#include <ATen/core/Tensor.h>

namespace agora {

// Stable Alignment (Liu et al. 2023, stable_alignment/alignment.py). Per group (a query and K of its rated
// responses), with CE_i the mean token NLL of response i and s_i its rating:
//   b      = the best-rated response (the first of equals, in the group's order)
//   d_i    = CE_b - CE_i + (s_b - s_i) / rating_scale * margin        for every other response i
//   loss   = CE_b + ratio * max(0, mean_{i != b} d_i)                 (CE_b alone for a single response)
// The hinge applies to the mean of the d_i, as in the original. The original indexes the margin's ratings by an
// unsorted position (sorted_ratings[idx], a bug); here the margin uses response i's own rating, as intended.
struct StableAlignmentOptions {
  double rating_scale = 7.0;
  double margin = 1.0;
  double ratio = 0.2;  // lambda
};
// Per group, the best-rated valid response (the first of equals) and the others it is compared with.
struct BestResponse {
  at::Tensor best;    // [G, 1] int64
  at::Tensor others;  // [G, K] bool: valid and not the best
};
BestResponse SelectBestResponse(const at::Tensor& scores, const at::Tensor& valid);

// ce, scores: [G, K] float; valid: [G, K] bool (K = the largest group; every row has at least one valid entry).
// Returns the per-group loss [G] and, through `penalty` if given, the per-group hinge term max(0, mean d_i).
at::Tensor StableAlignmentLoss(const at::Tensor& ce, const at::Tensor& scores, const at::Tensor& valid,
                               const StableAlignmentOptions& options, at::Tensor* penalty = nullptr);

// DPO (Rafailov et al. 2023), the sigmoid loss of TRL's DPOTrainer without label smoothing: with summed response
// log-probabilities of the policy (pi) and the reference (ref),
//   margin = beta * ((pi_chosen - ref_chosen) - (pi_rejected - ref_rejected)),   loss = -log sigmoid(margin).
// All arguments [P]; returns the per-pair loss [P].
at::Tensor DpoLoss(const at::Tensor& policy_chosen, const at::Tensor& policy_rejected, const at::Tensor& ref_chosen,
                   const at::Tensor& ref_rejected, double beta);

}  // namespace agora
