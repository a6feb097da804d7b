#include <algorithm>

#include <ATen/ATen.h>

#include "trainer/device_batch.h"

namespace agora {
namespace {

at::Tensor Row(const std::vector<int64_t>& values, const at::Device& device) {
  return at::tensor(values, at::kLong).view({1, static_cast<int64_t>(values.size())}).to(device);
}

}  // namespace

DeviceBatch ToDevice(const PackedBatch& batch, const at::Device& device) {
  DeviceBatch out;
  out.input_ids = Row(batch.input_ids, device);
  out.labels = Row(batch.labels, device);
  out.position_ids = Row(batch.position_ids, device);
  out.cu_seqlens = at::tensor(batch.cu_seqlens, at::kLong);
  out.sample_index = at::tensor(batch.sample_index, at::kInt);
  out.sequence_id = at::tensor(batch.sequence_id, at::kInt).to(at::kLong).to(device);
  out.sequence_group = at::tensor(batch.sequence_group, at::kInt).to(at::kLong).to(device);
  out.sequence_score = at::tensor(batch.sequence_score, at::kFloat).to(device);
  out.num_samples = batch.num_samples;
  out.num_groups = batch.num_groups;
  // Groups are contiguous runs of sequences (sequence_group is non-decreasing).
  for (size_t s = 0, run = 0; s < batch.sequence_group.size(); ++s) {
    run = s > 0 && batch.sequence_group[s] == batch.sequence_group[s - 1] ? run + 1 : 1;
    out.max_group_size = std::max(out.max_group_size, static_cast<int64_t>(run));
  }
  out.trained_tokens = batch.trained_tokens;
  out.tokens = out.sample_index.ge(0).sum().item<int64_t>();
  return out;
}

}  // namespace agora
