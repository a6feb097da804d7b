// The loader's PackedBatch moved to the training device (ToDevice): what every objective reads.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "data/training_data.h"

namespace agora {

// A PackedBatch on the training device: all rows flattened into one row of T tokens, samples separated by
// cu_seqlens (attention stays inside each sample).
struct DeviceBatch {
  at::Tensor input_ids;     // [1, T] int64
  at::Tensor labels;        // [1, T] int64, kIgnoreLabel where untrained
  at::Tensor position_ids;  // [1, T] int64, restarting per sample
  at::Tensor cu_seqlens;    // [segments + 1] int64 (CPU: only boundaries are read)
  at::Tensor sample_index;  // [T] int32 (CPU), -1 for padding
  // Sequences (samples) and the groups objectives compare them in (data/training_data.h), on the device.
  at::Tensor sequence_id;     // [T] int64: the token's sequence in this batch, -1 for padding
  at::Tensor sequence_group;  // [num_samples] int64, non-decreasing
  at::Tensor sequence_score;  // [num_samples] fp32
  int64_t num_samples = 0;
  int64_t num_groups = 0;
  int64_t max_group_size = 0;  // sequences in the largest group: known on the host, so shapes need no sync
  int64_t trained_tokens = 0;
  int64_t tokens = 0;  // non-padding tokens
};

DeviceBatch ToDevice(const PackedBatch& batch, const at::Device& device);

}  // namespace agora
