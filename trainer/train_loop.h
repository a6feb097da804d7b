// The training loop, objective-agnostic: gather a step's micro-batches, forward/backward each through the
// objective (loss sums divided by the step's total denominator), clip, check for non-finite values, update,
// then log, evaluate and checkpoint on schedule, and stop cleanly on preemption. It owns nothing: the recipe
// code (trainer/run_training.cpp) builds the parts and hands them in.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "data/training_data.h"
#include "models/llama.h"
#include "trainer/adamw.h"
#include "trainer/lr_schedule.h"
#include "trainer/metrics_log.h"
#include "trainer/nonfinite_policy.h"
#include "trainer/objective.h"
#include "trainer/run_log.h"
#include "trainer/tensorboard_writer.h"
#include "trainer/training_checkpoint.h"

namespace agora {

class DataParallel;  // trainer/distributed/data_parallel.h

struct LoopOptions {
  int64_t total_steps = 1;
  int64_t gradient_accumulation_steps = 1;
  double clip_grad_norm = 0.0;  // 0 = off
  NonFinitePolicy on_nonfinite = NonFinitePolicy::kSkip;
  int64_t eval_every_steps = 0;  // 0 = at the end only
  int64_t eval_max_batches = 0;  // 0 = all
  int64_t checkpoint_every_steps = 0;
  int64_t stop_after_steps = 0;  // 0 = off
  int64_t log_every_steps = 1;
  LrSchedule schedule;
  at::Device device = at::kCPU;
};

struct LoopParts {
  LlamaForCausalLM model{nullptr};
  Objective* objective = nullptr;
  AdamW* optimizer = nullptr;
  const TrainingDataLoader* train = nullptr;
  const TrainingDataLoader* validation = nullptr;  // may be null
  const CheckpointManager* checkpoints = nullptr;  // every rank's (rank 0 writes; sharded, each its shards)
  RunLog* log = nullptr;
  MetricsLog* metrics = nullptr;                  // null on data-parallel ranks other than 0
  TensorBoardWriter* tensorboard = nullptr;  // may be null
  DataParallel* data_parallel = nullptr;     // required; DataParallel(log) when training alone
};

enum class LoopEnd {
  kFinished,   // total_steps reached, final checkpoint written
  kStopped,    // stop_after_steps reached, checkpoint written
  kPreempted,  // SIGTERM/SIGINT, checkpoint written
};

// Runs from `state` (fresh or restored) until one of LoopEnd; `state` is kept current.
absl::StatusOr<LoopEnd> RunTrainLoop(const LoopOptions& options, LoopParts& parts, TrainerState& state);

struct EvalResult {
  double loss = 0.0;        // the objective's loss (SFT: mean NLL per trained token)
  double perplexity = 0.0;  // exp(mean NLL per trained token)
  int64_t trained_tokens = 0;
  std::vector<std::pair<std::string, double>> metrics;  // the objective's, per denominator unit
};
// Validation over the first `max_batches` batches of epoch 0 (all when 0), without gradients, in eval mode.
absl::StatusOr<EvalResult> Evaluate(LlamaForCausalLM& model, Objective& objective, const TrainingDataLoader& data,
                                    int64_t max_batches, const at::Device& device);

}  // namespace agora
