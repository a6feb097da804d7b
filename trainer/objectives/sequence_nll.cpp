#include "trainer/objectives/sequence_nll.h"

#include <ATen/ATen.h>

#include "util/ignore_label.h"

namespace agora {

at::Tensor PackedTokenNll(LlamaForCausalLM& model, const DeviceBatch& batch, HeadLoss how) {
  AttentionMask mask;
  mask.cu_seqlens = batch.cu_seqlens;
  at::Tensor hidden = model->forward(batch.input_ids, batch.position_ids, mask);
  // Predictions at 0..T-2 score targets 1..T-1. Every sample's first label is ignored, so no prediction crosses
  // into the next sample.
  const int64_t t = batch.input_ids.size(1);
  at::Tensor nll = HeadTokenNll(hidden.slice(1, 0, t - 1).reshape({t - 1, -1}), model->head_weight(),
                                batch.labels.slice(1, 1, t).reshape({t - 1}), how);
  return at::cat({at::zeros({1}, nll.options()), nll});
}

SequenceNll PerSequenceNll(const at::Tensor& token_nll, const DeviceBatch& batch) {
  // Padding tokens (sequence -1) go to an extra slot that is dropped.
  const int64_t n = batch.num_samples;
  at::Tensor slot = at::where(batch.sequence_id.ge(0), batch.sequence_id, n);
  at::Tensor trained = batch.labels.view({-1}).ne(kIgnoreLabel).to(token_nll.scalar_type());
  at::Tensor sum = at::zeros({n + 1}, token_nll.options()).index_add(0, slot, token_nll);
  at::Tensor count = at::zeros({n + 1}, token_nll.options()).index_add(0, slot, trained);
  return {sum.slice(0, 0, n), count.slice(0, 0, n)};
}

GroupedValues ByGroup(const at::Tensor& per_sequence, const DeviceBatch& batch, double fill) {
  // Groups are contiguous runs of sequences: sequence s is member s - (first sequence of its group) of it.
  at::Tensor group = batch.sequence_group;  // [S] int64, non-decreasing
  at::Tensor sizes = at::bincount(group, /*weights=*/{}, batch.num_groups);
  at::Tensor first = sizes.cumsum(0) - sizes;
  at::Tensor member = at::arange(batch.num_samples, group.options()) - first.index_select(0, group);
  const int64_t k = batch.max_group_size;
  at::Tensor flat = group * k + member;
  at::Tensor values = at::full({batch.num_groups * k}, fill, per_sequence.options()).index_put({flat}, per_sequence);
  at::Tensor valid = at::zeros({batch.num_groups * k}, per_sequence.options().dtype(at::kBool))
                         .index_fill(0, flat, true);
  return {values.view({batch.num_groups, k}), valid.view({batch.num_groups, k})};
}

}  // namespace agora
