// Collectives between the ranks of a data-parallel job, over LibTorch's c10d: NCCL between GPUs, Gloo between
// CPU processes (the same data-parallel code then runs, and is tested, on a machine without a GPU). Ranks meet
// through a c10d TCPStore at MASTER_ADDR:MASTER_PORT (rank 0 serves it, or torchrun's agent does); NCCL's
// unique id travels through that store. Every failure — a rank that never arrives, one that died, a collective
// past the timeout — comes back as a status naming the rank, the backend and the timeout, never as a hang.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "absl/status/statusor.h"
#include "trainer/distributed/launch_environment.h"

namespace agora {

enum class CommBackend { kGloo, kNccl };

absl::StatusOr<CommBackend> ParseCommBackend(const std::string& name);  // "gloo" | "nccl"

// A collective in flight.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  // Blocks until the collective is done (NCCL: until the current stream is ordered after it).
  virtual absl::Status Wait() = 0;
};

class Communicator {
 public:
  // Joins the job `env` describes; waits up to `timeout` for every rank (and uses the same timeout for every
  // collective later). NCCL: the process's CUDA device becomes cuda:<local rank>.
  static absl::StatusOr<std::unique_ptr<Communicator>> Connect(const LaunchEnvironment& env, CommBackend backend,
                                                              std::chrono::milliseconds timeout);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int64_t rank() const { return env_.rank; }
  int64_t world_size() const { return env_.world_size; }
  const LaunchEnvironment& environment() const { return env_; }
  CommBackend backend() const { return backend_; }
  // Where tensors handed to the collectives must live: the CPU for Gloo, cuda:<local rank> for NCCL.
  c10::Device device() const { return device_; }

  // Sums `tensor` (contiguous, on device()) over the ranks, in place, asynchronously. Every rank must start the
  // same collectives in the same order.
  std::unique_ptr<PendingCollective> StartSum(at::Tensor tensor);
  absl::Status Sum(at::Tensor tensor) { return StartSum(std::move(tensor))->Wait(); }
  // Every rank's `shard` side by side in `full` (full.numel() == world_size * shard.numel(), both contiguous, on
  // device(), the same dtype): rank r's shard lands at [r * n, (r + 1) * n).
  std::unique_ptr<PendingCollective> StartAllGather(at::Tensor full, at::Tensor shard);
  // The sum over the ranks of `full`, of which this rank receives its slice [rank * n, (rank + 1) * n) in
  // `shard` (n = shard.numel()): half an all-reduce's traffic, and no rank holds the whole sum.
  std::unique_ptr<PendingCollective> StartReduceScatter(at::Tensor shard, at::Tensor full);
  // Returns once every rank has called it (`what` names the occasion in a timeout error).
  absl::Status Barrier(const std::string& what);

  // "collective <what> on rank R of W (gloo, timeout 30 s)": the context every error carries.
  std::string Describe(const std::string& what) const;

 private:
  // Starts `collective` (a c10d call), naming it `what` in errors.
  std::unique_ptr<PendingCollective> Start(const std::string& what,
                                           const std::function<c10::intrusive_ptr<c10d::Work>()>& collective);
  Communicator(LaunchEnvironment env, CommBackend backend, std::chrono::milliseconds timeout, c10::Device device,
               c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<c10d::Backend> group);

  LaunchEnvironment env_;
  CommBackend backend_;
  std::chrono::milliseconds timeout_;
  c10::Device device_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> group_;
  std::shared_ptr<std::atomic<bool>> failed_ = std::make_shared<std::atomic<bool>>(false);
};

// The process groups themselves, one translation unit each (the NCCL one needs nccl.h and a CUDA build).
c10::intrusive_ptr<c10d::Backend> CreateGlooGroup(const c10::intrusive_ptr<c10d::Store>& store,
                                                  const LaunchEnvironment& env, std::chrono::milliseconds timeout);
c10::intrusive_ptr<c10d::Backend> CreateNcclGroup(const c10::intrusive_ptr<c10d::Store>& store,
                                                  const LaunchEnvironment& env, std::chrono::milliseconds timeout);

}  // namespace agora
