// AdamW (Loshchilov & Hutter; the same update as torch.optim.AdamW) over named parameters, with fp32 master
// weights and fp32 gradient accumulation for parameters stored in a lower precision (bf16 training on GPU).
// fp32 parameters are their own master copy and accumulate gradients in .grad directly, so CPU training keeps
// no extra copies. Norms and biases get no weight decay (the caller decides per parameter).
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"

namespace agora {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

struct TrainableParameter {
  std::string name;  // Hugging Face tensor name, the key of its state in checkpoints
  at::Tensor param;  // requires_grad leaf of the model
  bool decay = true;
};

class AdamW {
 public:
  AdamW(std::vector<TrainableParameter> params, const AdamWOptions& options);

  // After each micro-batch's backward: moves low-precision .grad into the fp32 accumulators.
  void AccumulateGradients();
  // Adds `gradient` (fp32, shaped like parameter i) into parameter i's accumulated gradient: how sharded data
  // parallelism hands over the reduced shard gradients, which autograd never sees.
  void AddGradient(size_t i, const at::Tensor& gradient);
  // The sum of squares of every accumulated gradient, fp64, a 0-dim tensor on the parameters' device (no host
  // copy): a sharded run sums it over the ranks before the square root.
  at::Tensor GradientSquareSum() const;
  // The global L2 norm of the accumulated gradients (computed in fp32 per tensor, summed in fp64); NaN or inf
  // when any gradient is not finite.
  double GradientNorm() const { return std::sqrt(GradientSquareSum().item<double>()); }
  // Multiplies every accumulated gradient by `factor` (global-norm clipping).
  void ScaleGradients(double factor);
  // One update at learning rate `lr` from the accumulated gradients, then clears them.
  void Step(double lr);
  // Drops the accumulated gradients without updating (a skipped step).
  void ZeroGradients();

  int64_t steps() const { return steps_; }
  const std::vector<TrainableParameter>& parameters() const { return params_; }
  // The fp32 gradient sum of parameter i when it is stored in a lower precision (undefined for fp32 ones, whose
  // .grad is the sum): what data-parallel reduction sums over ranks and writes back.
  at::Tensor Fp32GradientSum(size_t i) const { return state_[i].grad32; }

  // Moments (and master weights where the parameter is not fp32) keyed "<name>.exp_avg", "<name>.exp_avg_sq",
  // "<name>.master"; with steps() this is the whole optimizer state.
  std::map<std::string, at::Tensor> StateTensors() const;
  // Restores what StateTensors() returned; every tensor must be present with the right shape.
  absl::Status LoadState(const std::map<std::string, at::Tensor>& tensors, int64_t steps);

 private:
  at::Tensor& Grad(size_t i);

  struct State {
    at::Tensor master;     // fp32 copy when the parameter is lower precision; undefined otherwise
    at::Tensor grad32;     // fp32 gradient accumulator when the parameter is lower precision
    at::Tensor exp_avg, exp_avg_sq;
  };
  std::vector<TrainableParameter> params_;
  std::vector<State> state_;
  AdamWOptions options_;
  int64_t steps_ = 0;
};

}  // namespace agora
