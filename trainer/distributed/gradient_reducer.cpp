#include "trainer/distributed/gradient_reducer.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "absl/strings/str_cat.h"

namespace agora {
namespace {

// Runs after a parameter's gradient accumulator has written .grad.
class AfterAccumulation : public torch::autograd::FunctionPostHook {
 public:
  explicit AfterAccumulation(std::function<void()> fn) : fn_(std::move(fn)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    fn_();
    return outputs;
  }

 private:
  std::function<void()> fn_;
};

}  // namespace

GradientReducer::GradientReducer(Communicator& comm, std::vector<ReducedParameter> params, int64_t bucket_bytes)
    : comm_(comm), params_(std::move(params)) {
  const int64_t bucket_floats = std::max<int64_t>(1, bucket_bytes / 4);
  // Buckets in reverse registration order: the last layers' gradients come first in the backward.
  std::vector<std::vector<size_t>> groups;
  int64_t filled = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const at::Tensor& p = params_[k].param;
    const bool fits = !groups.empty() && filled + p.numel() <= bucket_floats &&
                      params_[groups.back().front()].param.device() == p.device();
    if (!fits) {
      groups.emplace_back();
      filled = 0;
    }
    groups.back().push_back(k);
    filled += p.numel();
  }
  views_.resize(params_.size());
  bucket_of_.resize(params_.size());
  arrived_.assign(params_.size(), false);
  for (size_t b = 0; b < groups.size(); ++b) {
    int64_t numel = 0;
    for (size_t i : groups[b]) numel += params_[i].param.numel();
    Bucket bucket;
    bucket.flat = at::zeros({numel}, params_[groups[b].front()].param.options().dtype(at::kFloat));
    int64_t offset = 0;
    for (size_t i : groups[b]) {
      const at::Tensor& p = params_[i].param;
      views_[i] = bucket.flat.narrow(0, offset, p.numel()).view(p.sizes());
      bucket_of_[i] = b;
      offset += p.numel();
    }
    bucket.members = std::move(groups[b]);
    buckets_.push_back(std::move(bucket));
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    std::shared_ptr<torch::autograd::Node> accumulator = torch::autograd::impl::grad_accumulator(params_[i].param);
    TORCH_CHECK(accumulator != nullptr, "GradientReducer: parameter ", i, " is not a requires_grad leaf");
    const uintptr_t key = accumulator->add_post_hook(std::make_unique<AfterAccumulation>([this, i] { OnGradient(i); }));
    hooks_.emplace_back(std::move(accumulator), key);  // holding the accumulator keeps the hook alive
  }
}

GradientReducer::~GradientReducer() {
  for (auto& [node, key] : hooks_) node->del_post_hook(key);
}

void GradientReducer::Arm(bool reduce) {
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = reduce;
  if (!reduce) return;
  arrived_.assign(params_.size(), false);
  for (Bucket& bucket : buckets_) bucket.waiting = static_cast<int64_t>(bucket.members.size());
  next_launch_ = 0;
}

void GradientReducer::OnGradient(size_t index) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_ || arrived_[index]) return;
  at::NoGradGuard no_grad;
  const ReducedParameter& p = params_[index];
  at::Tensor& view = views_[index];
  const at::Tensor& grad = p.param.grad();
  if (p.fp32_sum.defined()) {
    view.copy_(p.fp32_sum);
    if (grad.defined()) view.add_(grad);
  } else {
    view.copy_(grad);
  }
  arrived_[index] = true;
  --buckets_[bucket_of_[index]].waiting;
  LaunchReady();
}

void GradientReducer::LaunchReady() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].waiting == 0) {
    Bucket& bucket = buckets_[next_launch_++];
    bucket.pending = comm_.StartSum(bucket.flat);
  }
}

absl::Status GradientReducer::Finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_) return absl::OkStatus();
  armed_ = false;
  at::NoGradGuard no_grad;
  // Parameters the backward did not reach on this rank still take part: their share is what they hold.
  for (size_t i = 0; i < params_.size(); ++i) {
    if (arrived_[i]) continue;
    const ReducedParameter& p = params_[i];
    const at::Tensor& grad = p.param.grad();
    if (p.fp32_sum.defined()) {
      views_[i].copy_(p.fp32_sum);
      if (grad.defined()) views_[i].add_(grad);
    } else if (grad.defined()) {
      views_[i].copy_(grad);
    } else {
      views_[i].zero_();
    }
    arrived_[i] = true;
    --buckets_[bucket_of_[i]].waiting;
  }
  LaunchReady();
  absl::Status status;
  for (Bucket& bucket : buckets_) {
    // After one failure the others are not waited for: each could take the whole timeout.
    if (status.ok()) status = bucket.pending->Wait();
    bucket.pending.reset();
  }
  if (!status.ok()) return status;
  for (size_t i = 0; i < params_.size(); ++i) {
    const ReducedParameter& p = params_[i];
    if (p.fp32_sum.defined()) {
      p.fp32_sum.copy_(views_[i]);
      p.param.mutable_grad().reset();  // the optimizer reads the fp32 sum; nothing left to accumulate
    } else if (p.param.grad().defined()) {
      p.param.mutable_grad().copy_(views_[i]);
    } else {
      p.param.mutable_grad() = views_[i].to(p.param.scalar_type()).clone();
    }
  }
  return absl::OkStatus();
}

}  // namespace agora
