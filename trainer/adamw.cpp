#include "trainer/adamw.h"

#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"

namespace agora {

AdamW::AdamW(std::vector<TrainableParameter> params, const AdamWOptions& options)
    : params_(std::move(params)), options_(options) {
  at::NoGradGuard no_grad;
  state_.resize(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& p = params_[i].param;
    State& s = state_[i];
    if (p.scalar_type() != at::kFloat) {
      s.master = p.to(at::kFloat).contiguous();
      s.grad32 = at::zeros_like(s.master);
    }
    s.exp_avg = at::zeros_like(p, p.options().dtype(at::kFloat));
    s.exp_avg_sq = at::zeros_like(p, p.options().dtype(at::kFloat));
  }
}

at::Tensor& AdamW::Grad(size_t i) {
  return state_[i].master.defined() ? state_[i].grad32 : params_[i].param.mutable_grad();
}

void AdamW::AccumulateGradients() {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& g = params_[i].param.mutable_grad();
    if (!state_[i].master.defined() || !g.defined()) continue;
    state_[i].grad32.add_(g.to(at::kFloat));
    g.reset();
  }
}

void AdamW::AddGradient(size_t i, const at::Tensor& gradient) {
  at::NoGradGuard no_grad;
  at::Tensor& g = Grad(i);
  if (g.defined()) {
    g.add_(gradient);
  } else {
    g = gradient.to(params_[i].param.scalar_type()).clone();
  }
}

at::Tensor AdamW::GradientSquareSum() const {
  std::vector<at::Tensor> grads;
  grads.reserve(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& g = state_[i].master.defined() ? state_[i].grad32 : params_[i].param.grad();
    if (g.defined()) grads.push_back(g);
  }
  if (grads.empty()) {
    const at::Device device = params_.empty() ? at::Device(at::kCPU) : params_.front().param.device();
    return at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(device));
  }
  // One fused launch for every tensor's norm and one device->host copy for the step (a 7B LoRA run has about 290
  // gradient tensors: a .item() each would stall the GPU as often).
  return at::stack(at::_foreach_norm(grads)).to(at::kDouble).square().sum();
}

void AdamW::ScaleGradients(double factor) {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& g = Grad(i);
    if (g.defined()) g.mul_(factor);
  }
}

void AdamW::ZeroGradients() {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (state_[i].master.defined()) state_[i].grad32.zero_();
    params_[i].param.mutable_grad().reset();
  }
}

void AdamW::Step(double lr) {
  at::NoGradGuard no_grad;
  ++steps_;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double bias_correction1 = 1.0 - std::pow(b1, static_cast<double>(steps_));
  const double bias_correction2_sqrt = std::sqrt(1.0 - std::pow(b2, static_cast<double>(steps_)));
  const double step_size = lr / bias_correction1;
  for (size_t i = 0; i < params_.size(); ++i) {
    State& s = state_[i];
    at::Tensor& g = Grad(i);
    if (!g.defined()) continue;  // a parameter the loss did not reach this step
    at::Tensor w = s.master.defined() ? s.master : params_[i].param;
    // Decoupled weight decay, applied before the moment update exactly as torch.optim.AdamW does.
    if (params_[i].decay && options_.weight_decay != 0.0) w.mul_(1.0 - lr * options_.weight_decay);
    s.exp_avg.lerp_(g, 1.0 - b1);
    s.exp_avg_sq.mul_(b2).addcmul_(g, g, 1.0 - b2);
    at::Tensor denom = (s.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(options_.eps);
    w.addcdiv_(s.exp_avg, denom, -step_size);
    if (s.master.defined()) params_[i].param.copy_(s.master);
  }
  ZeroGradients();
}

std::map<std::string, at::Tensor> AdamW::StateTensors() const {
  std::map<std::string, at::Tensor> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string& name = params_[i].name;
    out[name + ".exp_avg"] = state_[i].exp_avg;
    out[name + ".exp_avg_sq"] = state_[i].exp_avg_sq;
    if (state_[i].master.defined()) out[name + ".master"] = state_[i].master;
  }
  return out;
}

absl::Status AdamW::LoadState(const std::map<std::string, at::Tensor>& tensors, int64_t steps) {
  at::NoGradGuard no_grad;
  std::map<std::string, at::Tensor> mine = StateTensors();
  for (auto& [key, target] : mine) {
    auto it = tensors.find(key);
    if (it == tensors.end()) return absl::NotFoundError(absl::StrCat("optimizer state lacks tensor ", key));
    if (!it->second.sizes().equals(target.sizes()))
      return absl::InvalidArgumentError(absl::StrCat("optimizer state tensor ", key, " has shape ",
                                                     c10::str(it->second.sizes()), ", expected ",
                                                     c10::str(target.sizes())));
  }
  if (tensors.size() != mine.size())
    return absl::InvalidArgumentError(absl::StrCat("optimizer state has ", tensors.size(), " tensors, expected ",
                                                   mine.size(), " (a different set of trainable parameters?)"));
  for (auto& [key, target] : mine) target.copy_(tensors.at(key));
  for (size_t i = 0; i < params_.size(); ++i)
    if (state_[i].master.defined()) params_[i].param.copy_(state_[i].master);
  steps_ = steps;
  return absl::OkStatus();
}

}  // namespace agora
