#include "trainer/objectives/sft.h"

#include <ATen/ATen.h>

#include "models/causal_lm_loss.h"

namespace agora {

at::Tensor PackedTokenNll(LlamaForCausalLM& model, const DeviceBatch& batch) {
  AttentionMask mask;
  mask.cu_seqlens = batch.cu_seqlens;
  at::Tensor hidden = model->forward(batch.input_ids, batch.position_ids, mask);
  // Predictions at 0..T-2 score targets 1..T-1. Every sample's first label is ignored, so no prediction crosses
  // into the next sample.
  const int64_t t = batch.input_ids.size(1);
  at::Tensor nll = HeadTokenNll(hidden.slice(1, 0, t - 1).reshape({t - 1, -1}), model->head_weight(),
                                batch.labels.slice(1, 1, t).reshape({t - 1}), model->head_loss);
  return at::cat({at::zeros({1}, nll.options()), nll});
}

LossOutput SftObjective::Forward(LlamaForCausalLM& model, const DeviceBatch& batch) {
  at::Tensor loss_sum = PackedTokenNll(model, batch).sum();
  return LossOutput{loss_sum, loss_sum.detach(), {}};
}

}  // namespace agora
