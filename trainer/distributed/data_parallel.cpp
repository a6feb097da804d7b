#include "trainer/distributed/data_parallel.h"

#include <vector>

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include "absl/strings/str_cat.h"
#include "models/tensor_file.h"
#include "trainer/distributed/sharded_checkpoint.h"
#include "util/status_macros.h"

namespace agora {
namespace {

std::vector<ReducedParameter> ReducedParameters(const AdamW& optimizer) {
  std::vector<ReducedParameter> out;
  for (size_t i = 0; i < optimizer.parameters().size(); ++i)
    out.push_back({optimizer.parameters()[i].param, optimizer.Fp32GradientSum(i)});
  return out;
}

}  // namespace

std::string DeviceForRank(const std::string& device, const LaunchEnvironment& env) {
  if (device == "cuda" || (device == "auto" && at::hasCUDA())) return absl::StrCat("cuda:", env.local_rank);
  return device;
}

absl::StatusOr<std::unique_ptr<Communicator>> JoinJob(const LaunchEnvironment& env, const std::string& backend,
                                                     const c10::Device& device, int64_t timeout_seconds) {
  CommBackend kind = device.is_cuda() ? CommBackend::kNccl : CommBackend::kGloo;
  if (backend != "auto") {
    AGORA_ASSIGN_OR_RETURN(kind, ParseCommBackend(backend));
  }
  if (kind == CommBackend::kNccl && !device.is_cuda())
    return absl::InvalidArgumentError(absl::StrCat("distributed.backend=nccl needs a CUDA device; this rank trains on ",
                                                   device.str(), " (use gloo for CPU training)"));
  return Communicator::Connect(env, kind, std::chrono::seconds(timeout_seconds));
}

DataParallel::DataParallel(std::unique_ptr<Communicator> comm, RunLog& log) : comm_(std::move(comm)), log_(log) {}

DataParallel::DataParallel(RunLog& log) : log_(log) {}

std::vector<TrainableParameter> DataParallel::Shard(ShardingLevel level, LlamaForCausalLM model,
                                                    const std::vector<NamedParameter>& params,
                                                    bool keep_adapters_whole) {
  sharded_ = std::make_unique<ShardedParameters>(*comm_, level, std::move(model), params, keep_adapters_whole);
  return sharded_->OptimizerParameters();
}

void DataParallel::Attach(AdamW& optimizer, int64_t bucket_bytes) {
  if (sharded_ != nullptr) {
    sharded_->Attach(optimizer);
  } else if (!alone()) {
    reducer_ = std::make_unique<GradientReducer>(*comm_, ReducedParameters(optimizer), bucket_bytes);
  }
}

void DataParallel::BeforeBackward(bool last_micro_batch) {
  last_micro_batch_ = last_micro_batch;
  if (reducer_ != nullptr) reducer_->Arm(last_micro_batch);
}

absl::Status DataParallel::AfterBackward() {
  if (sharded_ != nullptr) return sharded_->AfterBackward(last_micro_batch_);
  return reducer_ == nullptr ? absl::OkStatus() : reducer_->Finish();
}

absl::StatusOr<double> DataParallel::GradientNorm(const AdamW& optimizer) {
  if (sharded_ != nullptr) return sharded_->GradientNorm(optimizer);
  return optimizer.GradientNorm();
}

absl::Status DataParallel::AfterStep() { return sharded_ == nullptr ? absl::OkStatus() : sharded_->AfterStep(); }

absl::Status DataParallel::ErrorOr(absl::Status fallback) const {
  if (sharded_ != nullptr && !sharded_->error().ok()) return sharded_->error();
  return fallback;
}

absl::StatusOr<std::optional<std::filesystem::path>> DataParallel::SaveCheckpoint(const CheckpointManager& checkpoints,
                                                                                  const LlamaForCausalLM& model,
                                                                                  const AdamW& optimizer,
                                                                                  const TrainerState& state) {
  std::optional<std::filesystem::path> dir;
  if (sharded_ == nullptr) {
    if (rank() == 0) {
      AGORA_ASSIGN_OR_RETURN(dir, checkpoints.Save(model, optimizer, state));
    }
    AGORA_RETURN_IF_ERROR(Barrier("checkpoint written"));
    return dir;
  }
  // Every rank sees the same folder, so all agree whether this step was saved before.
  if (checkpoints.Complete(state.step)) return dir;
  if (rank() == 0) AGORA_RETURN_IF_ERROR(checkpoints.PrepareTemp(state.step));
  AGORA_RETURN_IF_ERROR(Barrier("checkpoint folder ready"));
  AGORA_RETURN_IF_ERROR(SaveTensors(checkpoints.TempFolder(state.step) / RankFileName(rank()),
                                    RankShardTensors(*sharded_, optimizer)));
  AGORA_RETURN_IF_ERROR(Barrier("checkpoint shards written"));
  if (rank() == 0) {
    AGORA_ASSIGN_OR_RETURN(dir, checkpoints.CommitSharded(model, state, ShardingMetadataJson(*sharded_),
                                                          sharded_->level() == ShardingLevel::kParameters));
  }
  AGORA_RETURN_IF_ERROR(Barrier("checkpoint committed"));
  return dir;
}

absl::Status DataParallel::Barrier(const std::string& what) {
  return alone() ? absl::OkStatus() : comm_->Barrier(what);
}

absl::Status DataParallel::SumStepCounts(int64_t* denominator, int64_t* trained_tokens, int64_t* tokens) {
  if (alone()) return absl::OkStatus();
  const int64_t local = *denominator;
  AGORA_RETURN_IF_ERROR(SumCounts({denominator, trained_tokens, tokens}));
  if (first_step_)
    log_.Info(absl::StrCat("first step on this rank: denominator ", local, " of ", *denominator, " over ",
                           comm_->world_size(), " ranks"));
  first_step_ = false;
  return absl::OkStatus();
}

absl::Status DataParallel::SumCounts(std::initializer_list<int64_t*> values) {
  std::vector<int64_t> host;
  for (int64_t* v : values) host.push_back(*v);
  at::Tensor t = at::tensor(host, at::kLong).to(comm_->device());
  if (absl::Status s = comm_->Sum(t); !s.ok()) return s;
  t = t.cpu();
  size_t k = 0;
  for (int64_t* v : values) *v = t[static_cast<int64_t>(k++)].item<int64_t>();
  return absl::OkStatus();
}

absl::Status DataParallel::SumStepValues(at::Tensor& sums) {
  if (alone()) return absl::OkStatus();
  at::Tensor t = sums.to(comm_->device()).contiguous();
  AGORA_RETURN_IF_ERROR(comm_->Sum(t));
  sums = t.to(sums.device());
  return absl::OkStatus();
}

absl::StatusOr<bool> DataParallel::AnyRank(bool yes) {
  if (alone()) return yes;
  int64_t count = yes ? 1 : 0;
  if (absl::Status s = SumCounts({&count}); !s.ok()) return s;
  return count > 0;
}

}  // namespace agora
