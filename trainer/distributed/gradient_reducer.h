// Sums the trainable parameters' gradients over the data-parallel ranks while the backward pass is still
// running, as PyTorch DDP does: the parameters are grouped into buckets of about `bucket_bytes` (fp32) in reverse
// registration order (roughly the order the backward produces their gradients); a hook on each parameter's
// gradient accumulator copies the finished gradient into its bucket, and a full bucket's all-reduce starts at
// once, overlapping the rest of the backward. Buckets start in index order on every rank (collectives must be
// issued in the same order everywhere), so a bucket that fills early waits for its predecessors.
//
// Only the step's last micro-batch reduces (Arm(true)); the earlier ones only accumulate locally. What is
// reduced is the whole step's gradient: for a parameter whose optimizer keeps an fp32 running sum (bf16 training)
// that sum plus the last micro-batch's .grad, else .grad (which already holds the earlier micro-batches). The
// sum is written back where the optimizer reads it. The loss is normalised by the global denominator before the
// backward, so a plain sum — not a mean — is the gradient of the global loss.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "trainer/distributed/communicator.h"

namespace torch::autograd {
struct Node;
}

namespace agora {

struct ReducedParameter {
  at::Tensor param;        // a requires_grad leaf
  at::Tensor fp32_sum;     // the optimizer's fp32 gradient sum for it, or undefined when it uses .grad
};

class GradientReducer {
 public:
  GradientReducer(Communicator& comm, std::vector<ReducedParameter> params, int64_t bucket_bytes);
  ~GradientReducer();  // removes the hooks
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Before a micro-batch's backward: `reduce` on the step's last micro-batch only.
  void Arm(bool reduce);
  // After that backward: starts the buckets no hook completed (parameters the loss did not reach contribute
  // zeros), waits for all of them and writes the sums back. A no-op when not armed.
  absl::Status Finish();

  int64_t bucket_count() const { return static_cast<int64_t>(buckets_.size()); }
  // Buckets whose all-reduce has started this step (all of them after Finish()); read between backward and
  // Finish() it shows how many started from the hooks, i.e. overlapped the backward.
  int64_t buckets_started() const { return static_cast<int64_t>(next_launch_); }

 private:
  struct Bucket {
    at::Tensor flat;                   // fp32, on the parameters' device
    std::vector<size_t> members;       // indices into params_
    int64_t waiting = 0;               // members whose gradient has not arrived this step
    std::unique_ptr<PendingCollective> pending;
  };
  void OnGradient(size_t index);  // the hook
  void LaunchReady();             // starts every full bucket whose predecessors have started

  Communicator& comm_;
  std::vector<ReducedParameter> params_;
  std::vector<at::Tensor> views_;          // params_[i]'s slice of its bucket, shaped like the parameter
  std::vector<size_t> bucket_of_;
  std::vector<bool> arrived_;
  std::vector<Bucket> buckets_;
  size_t next_launch_ = 0;
  bool armed_ = false;
  std::mutex mutex_;  // hooks run on the autograd engine's threads
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> hooks_;
};

}  // namespace agora
