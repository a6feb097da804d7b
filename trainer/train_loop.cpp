#include "trainer/train_loop.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <ATen/core/grad_mode.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "trainer/distributed/data_parallel.h"
#include "trainer/preemption.h"
#include "trainer/rng_state.h"
#include "util/status_macros.h"

namespace agora {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

// The most device memory torch's allocator has handed out in this process (weights, optimizer state, the largest
// step's activations): what decides whether a model and batch fit. Logged on CUDA, where it is known.
double PeakMemoryGiB(const at::Device& device) {
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index()
                                                                                       : c10::cuda::current_device());
  const auto aggregate = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  return static_cast<double>(stats.allocated_bytes[aggregate].peak) / (1024.0 * 1024.0 * 1024.0);
}

// The next micro-batch position: epochs roll over when one is used up.
DataPosition Advance(DataPosition p, int64_t batches_per_epoch) {
  if (p.batch >= batches_per_epoch) p = {p.epoch + 1, 0};
  return p;
}

// A micro-batch's sums, [loss, token NLL, metrics...], as one fp64 tensor on the device, added into `sums` there:
// the values reach the host once per step (or evaluation), not once per micro-batch and value.
void AddSums(at::Tensor& sums, const LossOutput& out) {
  std::vector<at::Tensor> values = {out.loss_sum.detach().to(at::kDouble), out.token_nll_sum.to(at::kDouble)};
  for (const auto& [name, value] : out.metrics) values.push_back(value.to(at::kDouble));
  at::Tensor stacked = at::stack(values);
  sums = sums.defined() ? sums + stacked : stacked;
}

constexpr int64_t kLossSum = 0, kTokenNllSum = 1, kFirstMetric = 2;

std::vector<std::string> MetricNames(const LossOutput& out) {
  std::vector<std::string> names;
  for (const auto& [name, value] : out.metrics) names.push_back(name);
  return names;
}

// Entry `index` of the host copy of the sums, divided by the denominator.
double PerUnit(const at::Tensor& host_sums, int64_t index, int64_t denominator) {
  return host_sums.data_ptr<double>()[index] / static_cast<double>(std::max<int64_t>(denominator, 1));
}

// The objective's metrics (named as it names them) from the host copy of the sums, per denominator unit.
std::vector<std::pair<std::string, double>> Metrics(const std::vector<std::string>& names, const at::Tensor& host_sums,
                                                    int64_t denominator) {
  std::vector<std::pair<std::string, double>> metrics;
  for (size_t i = 0; i < names.size(); ++i)
    metrics.emplace_back(names[i], PerUnit(host_sums, kFirstMetric + static_cast<int64_t>(i), denominator));
  return metrics;
}

absl::Status RecordMetrics(LoopParts& parts, const std::string& kind, int64_t step,
                    const std::vector<std::pair<std::string, double>>& values) {
  if (parts.metrics == nullptr) return absl::OkStatus();  // data-parallel ranks other than 0 record nothing
  AGORA_RETURN_IF_ERROR(parts.metrics->Write(MetricsRecord{kind, step, values}));
  if (parts.tensorboard != nullptr) {
    for (const auto& [name, value] : values)
      AGORA_RETURN_IF_ERROR(parts.tensorboard->AddScalar(absl::StrCat(kind, "/", name), value, step));
    AGORA_RETURN_IF_ERROR(parts.tensorboard->Flush());
  }
  return absl::OkStatus();
}

absl::Status SaveCheckpoint(LoopParts& parts, TrainerState& state, const std::string& why) {
  // Data parallel: rank 0 writes (a sharded run: every rank its shards, then rank 0 commits); every rank returns
  // once the checkpoint is complete.
  state.rng_states = CaptureRngStates();
  AGORA_ASSIGN_OR_RETURN(const std::optional<std::filesystem::path> dir,
                         parts.data_parallel->SaveCheckpoint(*parts.checkpoints, parts.model, *parts.optimizer, state));
  if (dir) parts.log->Info(absl::StrCat("checkpoint (", why, "): ", dir->string()));
  return absl::OkStatus();
}

absl::Status RunEval(const LoopOptions& options, LoopParts& parts, const TrainerState& state) {
  if (parts.validation == nullptr) return absl::OkStatus();
  absl::StatusOr<EvalResult> evaluated;
  try {
    evaluated = Evaluate(parts.model, *parts.objective, *parts.validation, options.eval_max_batches, options.device);
  } catch (const std::exception& e) {  // a sharded run's layer hooks throw when a collective fails
    return parts.data_parallel->ErrorOr(absl::InternalError(e.what()));
  }
  AGORA_ASSIGN_OR_RETURN(EvalResult eval, std::move(evaluated));
  std::string extra;
  for (const auto& [name, value] : eval.metrics) absl::StrAppend(&extra, ", ", name, " ", absl::StrFormat("%.4f", value));
  parts.log->Info(absl::StrFormat("eval at step %d: loss %.4f, perplexity %.3f (%d tokens)%s", state.step, eval.loss,
                                  eval.perplexity, eval.trained_tokens, extra));
  std::vector<std::pair<std::string, double>> values = {{"loss", eval.loss}, {"perplexity", eval.perplexity}};
  values.insert(values.end(), eval.metrics.begin(), eval.metrics.end());
  return RecordMetrics(parts, "eval", state.step, values);
}

}  // namespace

absl::StatusOr<EvalResult> Evaluate(LlamaForCausalLM& model, Objective& objective, const TrainingDataLoader& data,
                                    int64_t max_batches, const at::Device& device) {
  at::NoGradGuard no_grad;
  // Evaluation mode (no dropout) for the duration; the training mode the caller had comes back afterwards.
  const bool was_training = model->is_training();
  model->eval();
  struct RestoreMode {
    LlamaForCausalLM& model;
    bool training;
    ~RestoreMode() { model->train(training); }
  } restore{model, was_training};
  const int64_t batches = max_batches > 0 ? std::min(max_batches, data.stats().batches_per_epoch)
                                          : data.stats().batches_per_epoch;
  at::Tensor sums;
  std::vector<std::string> names;
  int64_t tokens = 0, denominator = 0;
  for (int64_t b = 0; b < batches; ++b) {
    AGORA_ASSIGN_OR_RETURN(PackedBatch batch, data.Get({0, b}));
    DeviceBatch device_batch = ToDevice(batch, device);
    const LossOutput out = objective.Forward(model, device_batch);
    AddSums(sums, out);
    names = MetricNames(out);
    tokens += device_batch.trained_tokens;
    denominator += objective.Denominator(device_batch);
  }
  if (tokens == 0) return absl::FailedPreconditionError("validation data has no trained token");
  const at::Tensor host = sums.cpu();  // the evaluation's one device->host copy
  EvalResult result;
  result.loss = PerUnit(host, kLossSum, denominator);
  result.perplexity = std::exp(PerUnit(host, kTokenNllSum, tokens));
  result.trained_tokens = tokens;
  result.metrics = Metrics(names, host, denominator);
  return result;
}

absl::StatusOr<LoopEnd> RunTrainLoop(const LoopOptions& options, LoopParts& parts, TrainerState& state) {
  const int64_t batches_per_epoch = parts.train->stats().batches_per_epoch;
  const Clock::time_point run_start = Clock::now();
  const int64_t first_step = state.step;
  // Run again after it finished (the final checkpoint is the one resumed from): nothing to train, and nothing to
  // write either, so metrics.jsonl keeps one final evaluation.
  if (first_step >= options.total_steps) {
    parts.log->Info(absl::StrFormat("the run already finished at step %d of %d: nothing to do", first_step,
                                    options.total_steps));
    return LoopEnd::kFinished;
  }
  // A fresh run measures the starting point, so the first evaluation after training has something to beat.
  if (state.step == 0 && options.eval_every_steps > 0) AGORA_RETURN_IF_ERROR(RunEval(options, parts, state));
  while (state.step < options.total_steps) {
    const Clock::time_point start = Clock::now();
    const int64_t step_index = state.step;  // 0-based index of the update being made
    const double lr = options.schedule.At(step_index);

    // The step's micro-batches first: the loss is normalised by their total denominator.
    std::vector<DeviceBatch> micro;
    int64_t denominator = 0, trained = 0, tokens = 0;
    for (int64_t i = 0; i < options.gradient_accumulation_steps; ++i) {
      const DataPosition position = Advance(state.data, batches_per_epoch);
      AGORA_ASSIGN_OR_RETURN(PackedBatch batch, parts.train->Get(position));
      state.data = {position.epoch, position.batch + 1};
      micro.push_back(ToDevice(batch, options.device));
      denominator += parts.objective->Denominator(micro.back());
      trained += micro.back().trained_tokens;
      tokens += micro.back().tokens;
    }
    // Data parallel: every rank normalises by the denominator of the whole global step.
    AGORA_RETURN_IF_ERROR(parts.data_parallel->SumStepCounts(&denominator, &trained, &tokens));
    at::Tensor sums;
    std::vector<std::string> names;
    for (size_t i = 0; i < micro.size(); ++i) {
      LossOutput out;
      // Gradients are reduced over ranks during the last micro-batch's backward only (sharded: every one's).
      parts.data_parallel->BeforeBackward(i + 1 == micro.size());
      try {
        out = parts.objective->Forward(parts.model, micro[i]);
        at::Tensor loss = out.loss_sum / static_cast<double>(std::max<int64_t>(denominator, 1));
        loss.backward();
      } catch (const std::exception& e) {
        // A sharded run's layer hooks stop autograd by throwing when a collective fails; that error is the story.
        return parts.data_parallel->ErrorOr(absl::InternalError(e.what()));
      }
      AGORA_RETURN_IF_ERROR(parts.data_parallel->AfterBackward());
      parts.optimizer->AccumulateGradients();
      AddSums(sums, out);
      names = MetricNames(out);
    }
    // Data parallel: the step's loss and metric sums over every rank.
    AGORA_RETURN_IF_ERROR(parts.data_parallel->SumStepValues(sums));
    const at::Tensor host_sums = sums.cpu();  // the step's one device->host copy of its values
    const std::vector<std::pair<std::string, double>> objective_metrics = Metrics(names, host_sums, denominator);
    const double loss = PerUnit(host_sums, kLossSum, denominator);
    AGORA_ASSIGN_OR_RETURN(const double grad_norm, parts.data_parallel->GradientNorm(*parts.optimizer));

    const bool finite = std::isfinite(loss) && std::isfinite(grad_norm);
    if (!finite) {
      const std::string what = absl::StrFormat("step %d: non-finite %s (loss %g, gradient norm %g)", step_index + 1,
                                               std::isfinite(loss) ? "gradient" : "loss", loss, grad_norm);
      if (options.on_nonfinite == NonFinitePolicy::kStop)
        return absl::DataLossError(absl::StrCat(what, "; stopping (training.on_nonfinite=stop)"));
      parts.log->Warning(absl::StrCat(what, "; step skipped, weights unchanged (training.on_nonfinite=skip)"));
      parts.optimizer->ZeroGradients();
      ++state.skipped_steps;
    } else {
      if (options.clip_grad_norm > 0.0 && grad_norm > options.clip_grad_norm)
        parts.optimizer->ScaleGradients(options.clip_grad_norm / (grad_norm + 1e-6));
      parts.optimizer->Step(lr);
      AGORA_RETURN_IF_ERROR(parts.data_parallel->AfterStep());
    }
    ++state.step;
    state.trained_tokens += trained;
    const double seconds = Seconds(start);

    if (state.step % options.log_every_steps == 0 || state.step == options.total_steps) {
      const double epoch = static_cast<double>(state.data.epoch) +
                           static_cast<double>(state.data.batch) / static_cast<double>(batches_per_epoch);
      const double tokens_per_second = static_cast<double>(tokens) / seconds;
      parts.log->Step(StepReport{state.step, options.total_steps, state.data.epoch, loss, lr, grad_norm,
                                 tokens_per_second, Seconds(run_start), first_step});
      std::vector<std::pair<std::string, double>> values = {
          {"loss", loss},
          {"lr", lr},
          {"grad_norm", grad_norm},
          {"tokens_per_second", tokens_per_second},
          {"trained_tokens", static_cast<double>(state.trained_tokens)},
          {"epoch", epoch},
          {"skipped", finite ? 0.0 : 1.0}};
      if (options.device.is_cuda()) values.emplace_back("peak_memory_gib", PeakMemoryGiB(options.device));
      values.insert(values.end(), objective_metrics.begin(), objective_metrics.end());
      AGORA_RETURN_IF_ERROR(RecordMetrics(parts, "train", state.step, values));
    }
    if (options.eval_every_steps > 0 && state.step % options.eval_every_steps == 0 &&
        state.step < options.total_steps)
      AGORA_RETURN_IF_ERROR(RunEval(options, parts, state));

    if (state.step == options.total_steps) break;
    int signal = PreemptionSignal();
    // Data parallel: a signal that reached any rank stops every rank after the same step.
    AGORA_ASSIGN_OR_RETURN(const bool any, parts.data_parallel->AnyRank(signal != 0));
    if (any && signal == 0) signal = SIGTERM;
    if (signal != 0) {
      parts.log->Finish();
      parts.log->Info(absl::StrCat("received ", signal == SIGTERM ? "SIGTERM" : "SIGINT", " after step ", state.step));
      AGORA_RETURN_IF_ERROR(SaveCheckpoint(parts, state, "preempted"));
      return LoopEnd::kPreempted;
    }
    if (options.stop_after_steps > 0 && state.step == options.stop_after_steps) {
      parts.log->Finish();
      AGORA_RETURN_IF_ERROR(SaveCheckpoint(parts, state, "training.stop_after_steps"));
      return LoopEnd::kStopped;
    }
    if (options.checkpoint_every_steps > 0 && state.step % options.checkpoint_every_steps == 0)
      AGORA_RETURN_IF_ERROR(SaveCheckpoint(parts, state, "every " + std::to_string(options.checkpoint_every_steps) + " steps"));
  }
  parts.log->Finish();
  AGORA_RETURN_IF_ERROR(RunEval(options, parts, state));
  AGORA_RETURN_IF_ERROR(SaveCheckpoint(parts, state, "final"));
  return LoopEnd::kFinished;
}

}  // namespace agora
