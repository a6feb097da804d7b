#include "trainer/distributed/data_parallel.h"

#include <vector>

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include "absl/strings/str_cat.h"
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

DataParallel::DataParallel(std::unique_ptr<Communicator> comm, const AdamW& optimizer, int64_t bucket_bytes,
                           RunLog& log)
    : comm_(std::move(comm)),
      reducer_(std::make_unique<GradientReducer>(*comm_, ReducedParameters(optimizer), bucket_bytes)),
      log_(log) {}

DataParallel::DataParallel(RunLog& log) : log_(log) {}

void DataParallel::BeforeBackward(bool last_micro_batch) {
  if (!alone()) reducer_->Arm(last_micro_batch);
}

absl::Status DataParallel::AfterBackward() { return alone() ? absl::OkStatus() : reducer_->Finish(); }

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
