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

#include "models/llama.h"
#include "trainer/device_batch.h"

namespace agora {

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
