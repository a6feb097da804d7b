#include "trainer/objectives/sft.h"

#include <ATen/ATen.h>

namespace agora {

LossOutput SftObjective::Forward(LlamaForCausalLM& model, const DeviceBatch& batch) {
  at::Tensor loss_sum = PackedTokenNll(model, batch, head_loss_).sum();
  return LossOutput{loss_sum, loss_sum.detach(), {}};
}

}  // namespace agora
