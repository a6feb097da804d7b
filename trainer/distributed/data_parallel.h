// What the training loop does differently with several ranks, in one place: sum the step's denominators before
// the backward (every rank's loss is then normalised by the global count, so ranks with fewer trained tokens
// weigh less, exactly as in one process over the combined batch), reduce gradients from the backward's hooks on
// the step's last micro-batch only, sum the logged loss, agree on preemption, and wait at barriers while rank 0
// writes checkpoints. A process training alone has one too, whose collectives are the identity (as llm.c runs its
// multi-GPU path with one process), so the loop has no branch for it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/adamw.h"
#include "trainer/distributed/communicator.h"
#include "trainer/distributed/gradient_reducer.h"
#include "trainer/distributed/sharded_parameters.h"
#include "trainer/training_checkpoint.h"
#include "trainer/run_log.h"

namespace agora {

// The device of this rank: with a launcher, "auto" and "cuda" mean cuda:<local rank> (one GPU per rank).
std::string DeviceForRank(const std::string& device, const LaunchEnvironment& env);

// Joins the job with the recipe's distributed.backend ("auto": NCCL on CUDA, Gloo on the CPU).
absl::StatusOr<std::unique_ptr<Communicator>> JoinJob(const LaunchEnvironment& env, const std::string& backend,
                                                     const c10::Device& device, int64_t timeout_seconds);

class DataParallel {
 public:
  // A rank of a launched job. Before the optimizer exists, Shard() (distributed.sharding other than none) lays
  // out the sharded state; after, Attach() connects the gradient path.
  DataParallel(std::unique_ptr<Communicator> comm, RunLog& log);
  // One process alone: rank 0 of 1; every sum is the value itself, every barrier returns at once.
  explicit DataParallel(RunLog& log);

  // Shards the trainable parameters (and, at level parameters, the decoder layers' weights) of `model`: returns
  // what the optimizer updates in their place, this rank's shards (sharded_parameters.h).
  std::vector<TrainableParameter> Shard(ShardingLevel level, LlamaForCausalLM model,
                                        const std::vector<NamedParameter>& params, bool keep_adapters_whole);
  // Unsharded: gradients all-reduced in buckets during the backward (gradient_reducer.h); sharded: the shards'.
  void Attach(AdamW& optimizer, int64_t bucket_bytes);

  int64_t rank() const { return alone() ? 0 : comm_->rank(); }
  int64_t world_size() const { return alone() ? 1 : comm_->world_size(); }
  int64_t bucket_count() const { return reducer_ == nullptr ? 0 : reducer_->bucket_count(); }
  ShardedParameters* sharded() const { return sharded_.get(); }

  // Replaces the step's local counts by their sums over the ranks (exact: int64). The first call logs this
  // rank's share of the denominator.
  absl::Status SumStepCounts(int64_t* denominator, int64_t* trained_tokens, int64_t* tokens);
  // Replaces the step's value sums ([loss, objective metrics...] in the same order on every rank, fp64, on the
  // training device) by their sums over the ranks, in one collective and without a host copy: rank 0 logs the
  // global step.
  absl::Status SumStepValues(at::Tensor& sums);
  // Whether any rank says yes (a preemption signal reached some rank: all stop at the same step).
  absl::StatusOr<bool> AnyRank(bool yes);

  void BeforeBackward(bool last_micro_batch);
  absl::Status AfterBackward();
  // The global gradient norm (a sharded run's shards hold parts of it).
  absl::StatusOr<double> GradientNorm(const AdamW& optimizer);
  // After the optimizer's update: a sharded run all-gathers the updated shards.
  absl::Status AfterStep();
  absl::Status Barrier(const std::string& what);
  // The first error a collective met inside autograd (sharded hooks throw to stop it), else `fallback`.
  absl::Status ErrorOr(absl::Status fallback) const;

  // Writes checkpoint `state.step`: rank 0 alone when unsharded; every rank its shards, then rank 0 commits,
  // when sharded. Every rank returns once the checkpoint is complete (rank 0 with its folder).
  absl::StatusOr<std::optional<std::filesystem::path>> SaveCheckpoint(const CheckpointManager& checkpoints,
                                                                      const LlamaForCausalLM& model,
                                                                      const AdamW& optimizer,
                                                                      const TrainerState& state);

 private:
  bool alone() const { return comm_ == nullptr; }
  absl::Status SumCounts(std::initializer_list<int64_t*> values);

  std::unique_ptr<Communicator> comm_;          // null alone
  std::unique_ptr<GradientReducer> reducer_;    // unsharded ranks of a job
  std::unique_ptr<ShardedParameters> sharded_;  // sharded ranks
  bool last_micro_batch_ = false;
  RunLog& log_;
  bool first_step_ = true;
};

}  // namespace agora
