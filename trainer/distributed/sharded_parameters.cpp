#include "trainer/distributed/sharded_parameters.h"

#include <map>
#include <tuple>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/StorageImpl.h>
#include <torch/csrc/autograd/custom_function.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace agora {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// "model.layers.12.mlp.up_proj.weight" -> 12; anything outside the decoder layers -> -1.
int64_t LayerOf(const std::string& name) {
  constexpr char kPrefix[] = "model.layers.";
  if (!absl::StartsWith(name, kPrefix)) return -1;
  const std::string rest = name.substr(sizeof(kPrefix) - 1);
  int64_t layer = -1;
  if (!absl::SimpleAtoi(rest.substr(0, rest.find('.')), &layer)) return -1;
  return layer;
}

// Gives `t`'s storage `bytes` of fresh memory from its own allocator, or none (bytes = 0). Every tensor viewing
// that storage (the model's parameters, the tensors autograd saved for backward) sees the change: this is how a
// layer's weights are released after its forward and come back, at the same addresses autograd recorded, before
// its backward. Writing the storage through `t` bumps only `t`'s version counter, not the parameters'.
void SetStorageBytes(const at::Tensor& t, size_t bytes) {
  c10::StorageImpl* storage = t.storage().unsafeGetStorageImpl();
  at::DataPtr data = bytes == 0 ? at::DataPtr(nullptr, storage->device()) : storage->allocator()->allocate(bytes);
  storage->set_data_ptr_noswap(std::move(data));
  storage->set_nbytes(bytes);
}

// The members' current values side by side, zero-padded to the group's padded length.
at::Tensor Flatten(const FlatGroup& group, int64_t world_size) {
  std::vector<at::Tensor> parts;
  for (const FlatMember& m : group.members) parts.push_back(m.param.detach().reshape(-1));
  at::Tensor flat = at::cat(parts);
  return at::constant_pad_nd(flat, {0, group.shard_numel * world_size - group.numel});
}

// A layer's Enter and Leave as autograd nodes: forward gathers (Enter) and releases (Leave); backward runs them in
// the mirror order, Leave's backward gathering the layer again before its backward starts and Enter's
// reduce-scattering its gradients and releasing it once the backward has passed through the whole layer. (Enter's
// backward runs after every AccumulateGrad of the layer's weights: it needs the gradient of the layer's input,
// which the same ops produce, and the engine runs a ready AccumulateGrad before any other node.) At level
// gradients nothing is gathered or released: only the gradients move.
ShardedParameters* Self(AutogradContext* ctx) {
  return reinterpret_cast<ShardedParameters*>(ctx->saved_data["self"].toInt());
}

struct LayerEntry : public torch::autograd::Function<LayerEntry> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& /*anchor*/,
                            int64_t self, int64_t layer) {
    ctx->saved_data["self"] = self;
    ctx->saved_data["layer"] = layer;
    return hidden;  // autograd makes it an alias whose grad_fn is this node
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const int64_t layer = ctx->saved_data["layer"].toInt();
    Self(ctx)->ReduceLayerGradients(layer);
    Self(ctx)->ReleaseLayer(layer);
    return {grads[0], at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct LayerExit : public torch::autograd::Function<LayerExit> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, int64_t self, int64_t layer) {
    ctx->saved_data["self"] = self;
    ctx->saved_data["layer"] = layer;
    return hidden;  // autograd makes it an alias whose grad_fn is this node
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const int64_t layer = ctx->saved_data["layer"].toInt();
    Self(ctx)->GatherLayer(layer);
    Self(ctx)->PrefetchLayer(layer - 1);  // overlaps this layer's backward
    return {grads[0], at::Tensor(), at::Tensor()};
  }
};

}  // namespace

std::vector<FlatGroup> PlanFlatGroups(const std::vector<NamedParameter>& params, ShardingLevel level,
                                      int64_t world_size, bool keep_adapters_whole) {
  std::vector<FlatGroup> groups;
  std::map<std::tuple<int64_t, bool, bool, int>, size_t> index;  // (layer, trainable, decay, dtype) -> group
  for (const NamedParameter& p : params) {
    const int64_t layer = LayerOf(p.name);
    const bool sharded_storage =
        level == ShardingLevel::kParameters && layer >= 0 && !(p.trainable && keep_adapters_whole);
    if (!p.trainable && !sharded_storage) continue;  // frozen and whole: not the sharding's business
    const bool decay = p.trainable && p.decay;
    const auto key = std::make_tuple(layer, p.trainable, decay, static_cast<int>(p.param.scalar_type()));
    auto [it, added] = index.emplace(key, groups.size());
    if (added) {
      FlatGroup group;
      group.name = absl::StrCat(layer >= 0 ? absl::StrCat("model.layers.", layer) : std::string("root"), "/",
                                !p.trainable ? "frozen" : decay ? "decay" : "no_decay");
      if (p.param.scalar_type() != at::kFloat) absl::StrAppend(&group.name, "/", c10::toString(p.param.scalar_type()));
      group.layer = layer;
      group.trainable = p.trainable;
      group.decay = decay;
      group.sharded_storage = sharded_storage;
      groups.push_back(std::move(group));
    }
    FlatGroup& group = groups[it->second];
    group.members.push_back({p.name, p.param, group.numel});
    group.numel += p.param.numel();
  }
  for (FlatGroup& group : groups) group.shard_numel = (group.numel + world_size - 1) / world_size;
  return groups;
}

ShardedParameters::ShardedParameters(Communicator& comm, ShardingLevel level, LlamaForCausalLM model,
                                     const std::vector<NamedParameter>& params, bool keep_adapters_whole)
    : comm_(comm),
      level_(level),
      model_(std::move(model)),
      groups_(PlanFlatGroups(params, level, comm.world_size(), keep_adapters_whole)) {
  at::NoGradGuard no_grad;
  const int64_t rank = comm_.rank(), world = comm_.world_size();
  layer_groups_.resize(static_cast<size_t>(model_->config().num_hidden_layers));
  layer_trainable_.resize(layer_groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    FlatGroup& group = groups_[g];
    const at::Tensor& first = group.members.front().param;
    at::Tensor flat = Flatten(group, world);
    group.shard = flat.narrow(0, rank * group.shard_numel, group.shard_numel).clone();
    if (level_ == ShardingLevel::kOptimizer && group.trainable)
      group.grad_sum = at::zeros({group.shard_numel * world}, first.options().dtype(at::kFloat));
    if (level_ != ShardingLevel::kOptimizer && group.trainable && group.layer >= 0)
      layer_trainable_[static_cast<size_t>(group.layer)].push_back(g);
    if (!group.sharded_storage) continue;
    // The members become views of the group's flat; its memory is then released until the layer's first use.
    group.full = flat;
    for (FlatMember& m : group.members)
      m.param.set_data(group.full.narrow(0, m.offset, m.param.numel()).view(m.param.sizes()));
    SetStorageBytes(group.full, 0);
    layer_groups_[static_cast<size_t>(group.layer)].push_back(g);
  }
  if (level_ != ShardingLevel::kOptimizer) {
    const at::Tensor any = model_->parameters().front();
    backward_anchor_ = at::zeros({}, any.options().dtype(at::kFloat)).set_requires_grad(true);
    model_->model->set_layer_hooks(this);
  }
}

ShardedParameters::~ShardedParameters() {
  if (level_ != ShardingLevel::kOptimizer) model_->model->set_layer_hooks(nullptr);
}

std::vector<TrainableParameter> ShardedParameters::OptimizerParameters() {
  std::vector<TrainableParameter> out;
  for (FlatGroup& group : groups_) {
    if (!group.trainable) continue;
    group.optimizer_index = static_cast<int64_t>(out.size());
    out.push_back({group.name, group.shard, group.decay});
  }
  return out;
}

void ShardedParameters::Check(absl::Status status) {
  if (status.ok()) return;
  if (error_.ok()) error_ = status;
  TORCH_CHECK(false, std::string(status.message()));
}

void ShardedParameters::StartGather(FlatGroup& group) {
  SetStorageBytes(group.full, static_cast<size_t>(group.full.numel()) * group.full.element_size());
  group.gathering = comm_.StartAllGather(group.full, group.shard);
}

void ShardedParameters::GatherLayer(int64_t layer) {
  for (size_t g : layer_groups_[static_cast<size_t>(layer)]) {
    FlatGroup& group = groups_[g];
    if (group.gathered) continue;
    if (group.gathering == nullptr) StartGather(group);
    const absl::Status status = group.gathering->Wait();
    group.gathering.reset();
    Check(status);
    group.gathered = true;
  }
}

void ShardedParameters::PrefetchLayer(int64_t layer) {
  if (layer < 0 || layer >= static_cast<int64_t>(layer_groups_.size())) return;
  for (size_t g : layer_groups_[static_cast<size_t>(layer)]) {
    FlatGroup& group = groups_[g];
    if (!group.gathered && group.gathering == nullptr) StartGather(group);
  }
}

void ShardedParameters::ReleaseLayer(int64_t layer) {
  for (size_t g : layer_groups_[static_cast<size_t>(layer)]) {
    FlatGroup& group = groups_[g];
    if (group.gathering != nullptr) {  // never free memory a collective is still writing
      const absl::Status status = group.gathering->Wait();
      group.gathering.reset();
      Check(status);
    }
    SetStorageBytes(group.full, 0);
    group.gathered = false;
  }
}

void ShardedParameters::StartReduceScatter(FlatGroup& group) {
  at::NoGradGuard no_grad;
  const at::Tensor& first = group.members.front().param;
  group.reduce_input = at::zeros({group.shard_numel * world_size()}, first.options().dtype(at::kFloat));
  for (FlatMember& m : group.members) {
    at::Tensor& grad = m.param.mutable_grad();
    if (!grad.defined()) continue;  // the loss did not reach it: a zero contribution
    group.reduce_input.narrow(0, m.offset, m.param.numel()).copy_(grad.reshape(-1));
    grad.reset();
  }
  group.reduce_output = at::empty({group.shard_numel}, group.reduce_input.options());
  group.reducing = comm_.StartReduceScatter(group.reduce_output, group.reduce_input);
}

absl::Status ShardedParameters::FinishReduceScatter(FlatGroup& group) {
  if (group.reducing == nullptr) return absl::OkStatus();
  const absl::Status status = group.reducing->Wait();
  group.reducing.reset();
  if (status.ok()) optimizer_->AddGradient(static_cast<size_t>(group.optimizer_index), group.reduce_output);
  group.reduce_input = at::Tensor();
  group.reduce_output = at::Tensor();
  return status;
}

void ShardedParameters::ReduceLayerGradients(int64_t layer) {
  // The layer above's reduce-scatter ran while this layer was differentiated; finish it before starting this
  // one's, so that at most one layer's fp32 flat is in flight.
  if (layer + 1 < static_cast<int64_t>(layer_trainable_.size()))
    for (size_t g : layer_trainable_[static_cast<size_t>(layer + 1)]) Check(FinishReduceScatter(groups_[g]));
  for (size_t g : layer_trainable_[static_cast<size_t>(layer)]) StartReduceScatter(groups_[g]);
}

at::Tensor ShardedParameters::Enter(int64_t layer, const at::Tensor& hidden) {
  GatherLayer(layer);
  PrefetchLayer(layer + 1);  // overlaps this layer's forward
  if (!at::GradMode::is_enabled()) return hidden;
  // The anchor requires grad, so the node runs in every backward even where `hidden` does not (a LoRA run's
  // embeddings are frozen): it is where the layer's gradients leave and its weights are released.
  return LayerEntry::apply(hidden, backward_anchor_, reinterpret_cast<int64_t>(this), layer);
}

at::Tensor ShardedParameters::Leave(int64_t layer, const at::Tensor& hidden) {
  ReleaseLayer(layer);
  if (!at::GradMode::is_enabled()) return hidden;
  return LayerExit::apply(hidden, reinterpret_cast<int64_t>(this), layer);
}

absl::Status ShardedParameters::AfterBackward(bool last_micro_batch) {
  at::NoGradGuard no_grad;
  if (!error_.ok()) return error_;
  if (level_ != ShardingLevel::kOptimizer) {
    // The decoder layers' reduce-scatters started in the backward (the first layer's may still be in flight);
    // then the root's (embeddings, final norm, head), one at a time: the embedding's fp32 flat alone is
    // vocabulary x hidden x 4 bytes.
    for (FlatGroup& group : groups_)
      if (absl::Status s = FinishReduceScatter(group); !s.ok()) return s;
    for (FlatGroup& group : groups_) {
      if (!group.trainable || group.layer >= 0) continue;
      StartReduceScatter(group);
      if (absl::Status s = FinishReduceScatter(group); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  // Level optimizer: the full fp32 gradient sums, as the unsharded path keeps them, all-reduced at the end.
  for (FlatGroup& group : groups_) {
    if (!group.trainable) continue;
    for (FlatMember& m : group.members) {
      at::Tensor& grad = m.param.mutable_grad();
      if (!grad.defined()) continue;
      group.grad_sum.narrow(0, m.offset, m.param.numel()).add_(grad.reshape(-1));
      grad.reset();
    }
  }
  if (!last_micro_batch) return absl::OkStatus();
  std::vector<std::unique_ptr<PendingCollective>> pending;
  for (FlatGroup& group : groups_)
    if (group.trainable) pending.push_back(comm_.StartSum(group.grad_sum));
  absl::Status status;
  for (auto& p : pending)
    if (absl::Status s = p->Wait(); status.ok()) status = s;
  if (!status.ok()) return status;
  for (FlatGroup& group : groups_) {
    if (!group.trainable) continue;
    optimizer_->AddGradient(static_cast<size_t>(group.optimizer_index),
                            group.grad_sum.narrow(0, comm_.rank() * group.shard_numel, group.shard_numel));
    group.grad_sum.zero_();
  }
  return absl::OkStatus();
}

absl::Status ShardedParameters::AfterStep() {
  at::NoGradGuard no_grad;
  for (FlatGroup& group : groups_) {
    if (!group.trainable || group.sharded_storage) continue;  // sharded storage is gathered where it is used
    at::Tensor full = at::empty({group.shard_numel * world_size()}, group.shard.options());
    if (absl::Status s = comm_.StartAllGather(full, group.shard)->Wait(); !s.ok()) return s;
    for (FlatMember& m : group.members)
      m.param.copy_(full.narrow(0, m.offset, m.param.numel()).view(m.param.sizes()));
  }
  return absl::OkStatus();
}

absl::StatusOr<double> ShardedParameters::GradientNorm(const AdamW& optimizer) {
  at::Tensor sum = optimizer.GradientSquareSum().reshape({1}).to(comm_.device());
  if (absl::Status s = comm_.Sum(sum); !s.ok()) return s;
  return std::sqrt(sum.item<double>());
}

}  // namespace agora
