// The seam between the training loop and what is being optimised. The loop knows no objective by name: it asks
// the objective for the loss of a micro-batch as a SUM and for that sum's denominator, so a step's loss is the
// sum over its micro-batches divided by the total denominator — exact under gradient accumulation and across
// data-parallel ranks (a mean of per-micro-batch means would weight short batches too much).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "data/sft_data.h"
#include "models/llama.h"

namespace agora {

// A PackedBatch on the training device: all rows flattened into one row of T tokens, samples separated by
// cu_seqlens (attention stays inside each sample).
struct DeviceBatch {
  at::Tensor input_ids;     // [1, T] int64
  at::Tensor labels;        // [1, T] int64, kIgnoreLabel where untrained
  at::Tensor position_ids;  // [1, T] int64, restarting per sample
  at::Tensor cu_seqlens;    // [segments + 1] int64 (CPU: only boundaries are read)
  at::Tensor sample_index;  // [T] int32 (CPU), -1 for padding
  // Sequences (samples) and the groups objectives compare them in (data/sft_data.h), on the device.
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

// Everything is a device tensor: the loop turns the step's sums into numbers with one device->host copy per
// step, where a double here would cost a GPU stall per micro-batch and value.
struct LossOutput {
  at::Tensor loss_sum;       // fp32 scalar on the device, differentiable
  at::Tensor token_nll_sum;  // scalar on the device: summed NLL of the trained tokens (evaluation's perplexity)
  // Extra sums (scalars on the device) the objective wants logged; like the loss, the loop divides them by the
  // total denominator.
  std::vector<std::pair<std::string, at::Tensor>> metrics;
};

class Objective {
 public:
  virtual ~Objective() = default;
  virtual std::string name() const = 0;
  // What the micro-batch's loss sum is normalised by (SFT: trained tokens; comparisons: groups).
  virtual int64_t Denominator(const DeviceBatch& batch) const = 0;
  virtual LossOutput Forward(LlamaForCausalLM& model, const DeviceBatch& batch) = 0;
};

}  // namespace agora
