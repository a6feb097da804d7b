#include "trainer/distributed/communicator.h"

#include <atomic>
#include <exception>
#include <vector>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "absl/strings/str_cat.h"

namespace agora {
namespace {

// c10d reports failures as exceptions whose what() carries a C++ backtrace; the first line is the message.
std::string ExceptionText(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  std::string text = c10 != nullptr ? c10->what_without_backtrace() : e.what();
  while (!text.empty() && (text.back() == '.' || text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

class C10dPending : public PendingCollective {
 public:
  C10dPending(c10::intrusive_ptr<c10d::Work> work, std::string context, std::shared_ptr<std::atomic<bool>> failed)
      : work_(std::move(work)), context_(std::move(context)), failed_(std::move(failed)) {}
  absl::Status Wait() override {
    try {
      work_->wait();
    } catch (const std::exception& e) {
      *failed_ = true;
      return absl::UnavailableError(absl::StrCat(context_, " failed: ", ExceptionText(e),
                                                 " (another rank has probably exited or stopped; see its log)"));
    }
    return absl::OkStatus();
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::string context_;
  std::shared_ptr<std::atomic<bool>> failed_;
};

// A collective that could not even start: Wait() reports why.
class FailedPending : public PendingCollective {
 public:
  explicit FailedPending(absl::Status status) : status_(std::move(status)) {}
  absl::Status Wait() override { return status_; }

 private:
  absl::Status status_;
};

}  // namespace

absl::StatusOr<CommBackend> ParseCommBackend(const std::string& name) {
  if (name == "gloo") return CommBackend::kGloo;
  if (name == "nccl") return CommBackend::kNccl;
  return absl::InvalidArgumentError(absl::StrCat("unknown communication backend '", name, "' (gloo | nccl)"));
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::Connect(const LaunchEnvironment& env, CommBackend backend,
                                                                   std::chrono::milliseconds timeout) {
  const std::string where =
      absl::StrCat("rank ", env.rank, " of ", env.world_size, " (", env.launcher, ", ",
                   backend == CommBackend::kNccl ? "nccl" : "gloo", ") joining ", env.master_addr, ":",
                   env.master_port, " within ", timeout.count() / 1000.0, " s");
  try {
    // The store: rank 0 serves it and waits for every rank to connect (a rank that never comes is reported
    // here, after `timeout`), unless torchrun's agent already serves it at that address.
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(env.master_port);
    options.isServer = env.rank == 0 && !env.agent_store;
    options.numWorkers = env.agent_store ? std::nullopt : std::optional<std::size_t>(env.world_size);
    options.waitWorkers = !env.agent_store;
    options.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    // Keys of a restarted torchrun group must not meet the previous attempt's.
    c10::intrusive_ptr<c10d::Store> store =
        c10::make_intrusive<c10d::PrefixStore>(absl::StrCat("agora/", env.restart_count), tcp);
    c10::Device device = c10::Device(c10::kCPU);
    c10::intrusive_ptr<c10d::Backend> group;
    if (backend == CommBackend::kNccl) {
      device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
      group = CreateNcclGroup(store, env, timeout);
    } else {
      group = CreateGlooGroup(store, env, timeout);
    }
    std::unique_ptr<Communicator> comm(new Communicator(env, backend, timeout, device, store, group));
    // One collective now, so a broken network (or, for NCCL, a failed communicator set-up: NCCL creates it on
    // first use, exchanging its unique id through the store) is reported at start-up rather than mid-step.
    absl::Status first = comm->Sum(at::ones({1}, at::TensorOptions().device(device)));
    if (!first.ok()) return absl::UnavailableError(absl::StrCat(where, ": ", first.message()));
    return comm;
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(where, " failed: ", ExceptionText(e),
                                               ". Did every rank start, with the same MASTER_ADDR:MASTER_PORT?"));
  }
}

Communicator::Communicator(LaunchEnvironment env, CommBackend backend, std::chrono::milliseconds timeout,
                           c10::Device device, c10::intrusive_ptr<c10d::Store> store,
                           c10::intrusive_ptr<c10d::Backend> group)
    : env_(std::move(env)),
      backend_(backend),
      timeout_(timeout),
      device_(device),
      store_(std::move(store)),
      group_(std::move(group)) {}

Communicator::~Communicator() {
  // After a failed collective the group is abandoned, not destroyed: its worker threads may still wait on a dead
  // or hung peer (each queued collective until its timeout), and the process is about to exit with the error.
  if (*failed_) {
    (void)group_.release();
    (void)store_.release();
    return;
  }
  // ProcessGroupNCCL must be shut down before it is destroyed (NVIDIA's advice: otherwise a hang at exit).
  try {
    group_->shutdown();
  } catch (const std::exception&) {
    // Nothing left to report to: the job is ending.
  }
}

std::string Communicator::Describe(const std::string& what) const {
  return absl::StrCat("collective ", what, " on rank ", env_.rank, " of ", env_.world_size, " (",
                      backend_ == CommBackend::kNccl ? "nccl" : "gloo", ", timeout ", timeout_.count() / 1000.0,
                      " s)");
}

std::unique_ptr<PendingCollective> Communicator::Start(
    const std::string& what, const std::function<c10::intrusive_ptr<c10d::Work>()>& collective) {
  try {
    return std::make_unique<C10dPending>(collective(), Describe(what), failed_);
  } catch (const std::exception& e) {
    return std::make_unique<FailedPending>(
        absl::UnavailableError(absl::StrCat(Describe(what), " could not start: ", ExceptionText(e))));
  }
}

std::unique_ptr<PendingCollective> Communicator::StartSum(at::Tensor tensor) {
  return Start("all-reduce", [&] {
    std::vector<at::Tensor> tensors{std::move(tensor)};
    return group_->allreduce(tensors);
  });
}

std::unique_ptr<PendingCollective> Communicator::StartAllGather(at::Tensor full, at::Tensor shard) {
  TORCH_CHECK(full.numel() == shard.numel() * env_.world_size, "all-gather of ", shard.numel(), " values per rank into ",
              full.numel());
  return Start("all-gather", [&] { return group_->_allgather_base(full, shard); });
}

std::unique_ptr<PendingCollective> Communicator::StartReduceScatter(at::Tensor shard, at::Tensor full) {
  TORCH_CHECK(full.numel() == shard.numel() * env_.world_size, "reduce-scatter of ", full.numel(), " values into ",
              shard.numel(), " per rank");
  return Start("reduce-scatter", [&] { return group_->_reduce_scatter_base(shard, full); });
}

absl::Status Communicator::Barrier(const std::string& what) {
  // A one-element all-reduce: the same on both backends, and it needs no device guess (NCCL's barrier does).
  absl::Status status = Sum(at::zeros({1}, at::TensorOptions().device(device_)));
  if (!status.ok()) return absl::UnavailableError(absl::StrCat("barrier (", what, "): ", status.message()));
  return absl::OkStatus();
}

}  // namespace agora
