#include "trainer/run_training.h"

#include <cmath>
#include <fstream>

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/ascii.h"
#include "util/read_file.h"
#include "data/load_tokenizer.h"
#include "models/checkpoint.h"
#include "models/config.h"
#include "models/device_options.h"
#include "models/hf_state_dict.h"
#include "models/quantized_weight.h"
#include "models/lora.h"
#include "trainer/distributed/data_parallel.h"
#include "trainer/memory_model_recipe.h"
#include "trainer/distributed/launch_environment.h"
#include "trainer/objectives/dpo.h"
#include "trainer/objectives/sft.h"
#include "trainer/objectives/stable_alignment.h"
#include "trainer/preemption.h"
#include "trainer/resume_policy.h"
#include "trainer/rng_state.h"
#include "util/atomic_file.h"
#include "util/status_macros.h"

namespace agora {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<TrainingDataOptions> DataOptions(const Recipe& recipe, const DatasetRecipe& dataset, bool train) {
  const DataRecipe& data = recipe.data;
  TrainingDataOptions o;
  o.path = dataset.path;
  o.format = dataset.format;
  o.fields = FieldMap{dataset.messages_field, dataset.role_field,     dataset.content_field,
                      dataset.prompt_field,   dataset.response_field, dataset.system_field};
  o.chat_template = data.chat_template;
  o.bad_lines = data.on_bad_line;
  o.max_seq_len = data.max_seq_len;
  o.responses_per_query = recipe.stable_alignment.responses_per_query;
  o.append_eos = data.append_eos;
  for (absl::string_view file : absl::StrSplit(data.meta_prompts, ',', absl::SkipWhitespace())) {
    const std::string path(absl::StripAsciiWhitespace(file));
    absl::StatusOr<std::string> text = ReadFile(path);
    if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat("data.meta_prompts: ", text.status().message()));
    o.meta_prompts.push_back(*std::move(text));
  }
  o.max_source_len = data.max_source_len;
  o.max_target_len = data.max_target_len;
  o.batch_rows = recipe.training.batch_size;
  o.packing = data.packing;
  o.shuffle = train && data.shuffle;
  o.seed = static_cast<uint64_t>(recipe.seed);
  return o;
}

void Describe(RunLog& log, const std::string& what, const TrainingDataOptions& o, const TrainingDataStats& s) {
  log.Info(absl::StrFormat(
      "%s data %s: %d records -> %d samples (%d sequences), %d tokens, %d batches of %d x %d tokens (%s)", what,
      o.path.string(), s.records, s.samples, s.sequences, s.tokens, s.batches_per_epoch, o.batch_rows, o.max_seq_len,
      o.packing ? "packed" : "padded"));
  // The truncation policy, stated where the user reads: long samples keep their beginning.
  if (s.truncated > 0)
    log.Warning(absl::StrFormat("%s data: %d sequences cut (data.max_seq_len=%d keeps the first tokens; dromedary "
                                "also data.max_source_len / max_target_len)",
                                what, s.truncated, o.max_seq_len));
  if (s.dropped_untrained > 0)
    log.Warning(absl::StrFormat("%s data: %d records left out: a sequence without trained token within "
                                "data.max_seq_len", what, s.dropped_untrained));
  if (s.skipped_bad_lines > 0) {
    log.Warning(absl::StrFormat("%s data: %d malformed lines skipped (data.on_bad_line=skip)", what,
                                s.skipped_bad_lines));
    for (const std::string& example : s.skipped_examples) log.Warning(absl::StrCat("  skipped ", example));
  }
}

// Norms (and biases, should a model have them) are not decayed: shrinking a gain towards 0 is not
// regularisation.
bool Decays(const std::string& name) { return !absl::StrContains(name, "norm") && !absl::EndsWith(name, ".bias"); }

// The checkpoint this run continues from, if any. resume=auto skips damaged checkpoints (sizes or CRC-32C not
// as saved), the leader moving them aside; what it skipped is added to `damaged` for the log.
absl::StatusOr<std::optional<fs::path>> CheckpointToResume(const Recipe& recipe, const fs::path& checkpoints_dir,
                                                           bool leader, std::vector<std::string>& damaged) {
  if (recipe.resume == "auto") return LatestIntactCheckpoint(checkpoints_dir, leader, damaged);
  if (recipe.resume == "none") {
    if (std::optional<fs::path> existing = LatestCheckpoint(checkpoints_dir))
      return absl::FailedPreconditionError(absl::StrCat(
          "resume=none but ", recipe.output_dir, " already holds checkpoint ", existing->string(),
          "; resume with resume=auto or pick a new output_dir"));
    return std::nullopt;
  }
  if (!fs::exists(fs::path(recipe.resume) / kTrainerStateFile))
    return absl::NotFoundError(absl::StrCat("resume=", recipe.resume, ": not a checkpoint folder (no trainer_state.json)"));
  if (absl::Status verified = VerifyCheckpoint(recipe.resume); !verified.ok())
    return absl::DataLossError(absl::StrCat("resume=", recipe.resume, ": damaged checkpoint: ", verified.message()));
  return fs::path(recipe.resume);
}

// A resumed run against the recipe its run folder holds (resume_policy.h), before anything is loaded or written:
// refused changes stop it; allowed ones are logged. Another world size (or training.batch_size) is allowed: the
// weights and optimizer state are re-cut for it and the data position is remapped (RemapDataPosition).
absl::Status CheckResumeFits(const Recipe& recipe, const fs::path& run_dir, RunLog& log) {
  const fs::path saved_path = run_dir / "recipe.yaml";
  if (!fs::exists(saved_path)) return absl::OkStatus();
  absl::StatusOr<Recipe> saved = LoadRecipe(saved_path, {});
  if (!saved.ok()) {
    log.Warning(absl::StrCat("cannot compare with the run's recipe: ", saved.status().message()));
    return absl::OkStatus();
  }
  const ResumeChanges changes = CompareForResume(*saved, recipe);
  if (!changes.refused.empty())
    return absl::FailedPreconditionError(absl::StrCat(
        "resuming ", run_dir.string(), " with a recipe that changes what its checkpoints mean: ",
        DescribeChanges(changes.refused), " (", saved_path.string(),
        " has the first values). Resume with them, or start a new run: another output_dir, or resume=none after "
        "moving this one"));
  if (!changes.allowed.empty())
    log.Info(absl::StrCat("resuming with a changed recipe: ", DescribeChanges(changes.allowed)));
  return absl::OkStatus();
}

// The data position of a checkpoint saved with another global batch (another world size or batch size): the
// rows of the epoch's order it consumed, counted in this run's global batches. The epoch's row order does not
// depend on either, so the run goes on with the very next sample. Refused when the rows consumed are not a whole
// number of this run's batches (the step boundaries would fall mid-batch).
absl::Status RemapDataPosition(TrainerState& state, int64_t global_batch_rows, int64_t batches_per_epoch,
                               const fs::path& from, RunLog& log) {
  const int64_t saved_rows = state.global_batch_rows;
  if (saved_rows == 0 || saved_rows == global_batch_rows) return absl::OkStatus();
  const int64_t consumed = state.data.batch * saved_rows;
  const DataPosition before = state.data;
  if (consumed % global_batch_rows != 0)
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s stopped after %d rows of epoch %d, in global batches of %d rows (training.batch_size x %d ranks); this "
        "run's global batch is %d rows, which does not divide %d. Resume with a global batch that does (e.g. %d "
        "rows: training.batch_size x ranks)",
        from.string(), consumed, state.data.epoch, saved_rows, state.world_size, global_batch_rows, consumed,
        saved_rows));
  state.data.batch = std::min(consumed / global_batch_rows, batches_per_epoch);
  log.Info(absl::StrFormat("data position remapped from %d global batches of %d rows to %d of %d (epoch %d)",
                           before.batch, saved_rows, state.data.batch, global_batch_rows, state.data.epoch));
  return absl::OkStatus();
}

// LoRA adapters on the loaded base model: the checkpoint's when resuming, those of lora.init_from (a PEFT
// adapter folder) when given, fresh ones (PEFT's initialisation, drawn with the recipe's seed) otherwise.
absl::StatusOr<LoraConfig> SetUpLora(const Recipe& recipe, LlamaForCausalLM& model,
                                     const std::optional<fs::path>& resume_from, RunLog& log) {
  const LoraRecipe& lora = recipe.lora;
  if (recipe.model.activation_checkpointing && lora.dropout > 0)
    return absl::InvalidArgumentError(
        "model.activation_checkpointing with lora.dropout > 0 is not supported: the recomputed forward would draw "
        "other dropout masks than the first; set lora.dropout=0 or model.activation_checkpointing=false");
  const fs::path from = resume_from ? *resume_from : fs::path(lora.init_from);
  if (!from.empty()) {
    AGORA_ASSIGN_OR_RETURN(LoraConfig config, LoadPeftAdapter(model, from));
    log.Info(absl::StrFormat("LoRA adapters from %s: rank %d, alpha %g, targets %s", from.string(), config.rank,
                             config.alpha, absl::StrJoin(config.targets, ",")));
    return config;
  }
  LoraConfig config;
  config.rank = lora.rank;
  config.alpha = lora.alpha;
  config.dropout = lora.dropout;
  config.use_rslora = lora.use_rslora;
  absl::StatusOr<std::vector<std::string>> targets = ParseLoraTargets(lora.targets);
  if (!targets.ok()) return absl::InvalidArgumentError(absl::StrCat("lora.targets: ", targets.status().message()));
  config.targets = *targets;
  AGORA_RETURN_IF_ERROR(AddLora(model, config, at::make_generator<at::CPUGeneratorImpl>(recipe.seed)));
  return config;
}

// loss=auto fuses the head with the loss on CUDA; loss=fused on the CPU runs the same vocabulary tiles in ATen.
HeadLoss ResolveHeadLoss(const Recipe& recipe, const ModelOptions& model_options) {
  const bool fused =
      recipe.loss == LossChoice::kFused || (recipe.loss == LossChoice::kAuto && model_options.device.is_cuda());
  return fused ? HeadLoss::kFused : HeadLoss::kTorch;
}

// The recipe's objective, checked against the training file's format. DPO on a full fine-tune loads a second,
// frozen copy of model.path (built with the same options) as its reference.
absl::StatusOr<std::unique_ptr<Objective>> MakeObjective(const Recipe& recipe, RecordFormat format,
                                                         const ModelOptions& model_options, HeadLoss head_loss,
                                                         RunLog& log) {
  const std::map<ObjectiveKind, RecordFormat> needs = {{ObjectiveKind::kStableAlignment, RecordFormat::kSandboxGroups},
                                                       {ObjectiveKind::kDpo, RecordFormat::kPreference}};
  const auto need = needs.find(recipe.objective);
  if (need == needs.end() ? IsGroupFormat(format) : format != need->second)
    return absl::InvalidArgumentError(absl::StrCat(
        "objective=", ObjectiveKindName(recipe.objective), " does not train on data.train (format ",
        RecordFormatName(format),
        "): sft takes conversations or dromedary records, stable_alignment sandbox_groups, dpo preference"));
  const StableAlignmentRecipe& sa = recipe.stable_alignment;
  if (recipe.objective == ObjectiveKind::kStableAlignment)
    return std::make_unique<StableAlignmentObjective>(StableAlignmentOptions{sa.rating_scale, sa.margin, sa.ratio},
                                                      head_loss);
  if (recipe.objective == ObjectiveKind::kDpo) {
    LlamaForCausalLM reference{nullptr};
    if (recipe.lora.rank == 0) {
      AGORA_ASSIGN_OR_RETURN(LoadedModel loaded,
                             LoadModel(recipe.model.path, model_options, recipe.model.on_nonfinite_weights));
      reference = loaded.model;
      for (auto& p : reference->parameters()) p.set_requires_grad(false);
      reference->eval();
      log.Info("dpo: full fine-tuning keeps a frozen copy of model.path as the reference model (one more model in "
               "memory); LoRA runs use the base model with the adapters off instead");
    }
    return std::make_unique<DpoObjective>(recipe.dpo.beta, head_loss, reference);
  }
  return std::make_unique<SftObjective>(head_loss);
}

constexpr double kMiB = 1024.0 * 1024.0;

// VmHWM of /proc/self/status: the most resident memory this process has held, in bytes (0 where unreadable).
int64_t ResidentPeakBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return 0;
}

double PeakAllocatedBytes(const at::Device& device) {
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index()
                                                                                       : c10::cuda::current_device());
  return static_cast<double>(stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak);
}

}  // namespace

absl::StatusOr<LoopOptions> LoopOptionsFrom(const Recipe& recipe, int64_t batches_per_epoch, const at::Device& device) {
  const TrainingRecipe& training = recipe.training;
  const SchedulerRecipe& scheduler = recipe.scheduler;
  if (scheduler.warmup_ratio > 0 && scheduler.warmup_steps > 0)
    return absl::InvalidArgumentError("set scheduler.warmup_steps or scheduler.warmup_ratio, not both");
  LoopOptions o;
  o.total_steps = training.max_steps > 0
                      ? training.max_steps
                      : training.epochs * batches_per_epoch / training.gradient_accumulation_steps;
  o.gradient_accumulation_steps = training.gradient_accumulation_steps;
  o.clip_grad_norm = training.clip_grad_norm;
  o.on_nonfinite = training.on_nonfinite;
  o.eval_every_steps = recipe.eval.every_steps;
  o.eval_max_batches = recipe.eval.max_batches;
  o.checkpoint_every_steps = recipe.checkpoint.every_steps;
  o.stop_after_steps = training.stop_after_steps;
  o.log_every_steps = recipe.logging.log_every_steps;
  o.schedule.kind = scheduler.name;
  o.schedule.lr = recipe.optimizer.lr;
  o.schedule.warmup_steps =
      scheduler.warmup_ratio > 0
          ? static_cast<int64_t>(std::ceil(scheduler.warmup_ratio * static_cast<double>(o.total_steps)))
          : scheduler.warmup_steps;
  o.schedule.total_steps = o.total_steps;
  o.schedule.min_lr_ratio = scheduler.min_lr_ratio;
  o.device = device;
  return o;
}

absl::StatusOr<LoopEnd> RunTraining(const Recipe& recipe, bool terminal) {
  // Data parallel when a launcher (torchrun, srun, mpirun, agora launch) started this process: join the other
  // ranks first, so a rank that never comes is reported before any work. Rank 0 alone writes the run folder's
  // logs, metrics and checkpoints; the others log to logs/rank_N.txt.
  AGORA_ASSIGN_OR_RETURN(std::optional<LaunchEnvironment> launch, ReadLaunchEnvironment());
  const bool leader = !launch || launch->rank == 0;

  // Where and in what precision.
  AGORA_ASSIGN_OR_RETURN(ModelOptions model_options,
                         ResolveModelOptions(launch ? DeviceForRank(recipe.device, *launch) : recipe.device,
                                             recipe.model.dtype));
  model_options.attention = recipe.model.attention;
  model_options.activation_checkpointing = recipe.model.activation_checkpointing;
  if (recipe.lora.quantize_base != BaseQuantization::kNone && recipe.lora.rank == 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "lora.quantize_base=", BaseQuantizationName(recipe.lora.quantize_base),
        " quantises a frozen base, so it needs LoRA: set lora.rank >= 1 (full fine-tuning trains every weight)"));
  model_options.quantize_base = recipe.lora.quantize_base;
  if (recipe.lora.quantize_base != BaseQuantization::kNone && recipe.distributed.sharding == ShardingLevel::kParameters)
    return absl::InvalidArgumentError(absl::StrCat(
        "distributed.sharding=parameters does not shard a quantised base (lora.quantize_base=",
        BaseQuantizationName(recipe.lora.quantize_base),
        "): at 0.5 bytes a parameter it is small already; use distributed.sharding=gradients"));
  const HeadLoss head_loss = ResolveHeadLoss(recipe, model_options);
  std::unique_ptr<Communicator> communicator;
  if (launch) {
    AGORA_ASSIGN_OR_RETURN(communicator, JoinJob(*launch, recipe.distributed.backend, model_options.device,
                                                 recipe.distributed.timeout_s));
  }

  // The run folder, and whether this run continues an earlier one.
  const fs::path run_dir = recipe.output_dir;
  std::error_code ec;
  fs::create_directories(run_dir / "checkpoints", ec);
  if (!leader) fs::create_directories(run_dir / "logs", ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", run_dir.string(), ": ", ec.message()));
  std::vector<std::string> damaged;
  AGORA_ASSIGN_OR_RETURN(std::optional<fs::path> resume_from,
                         CheckpointToResume(recipe, run_dir / "checkpoints", leader, damaged));

  // What the user sees: log.txt and the console, metrics.jsonl, TensorBoard, the resolved recipe.
  static std::FILE* const no_console = std::fopen("/dev/null", "w");  // ranks other than 0 keep to their file
  AGORA_ASSIGN_OR_RETURN(std::unique_ptr<RunLog> log,
                         leader ? RunLog::Open(run_dir / "log.txt", terminal)
                                : RunLog::Open(run_dir / "logs" / absl::StrCat("rank_", launch->rank, ".txt"), false,
                                               no_console));
  for (const std::string& why : damaged) log->Warning(absl::StrCat("skipped a damaged checkpoint: ", why));
  const int64_t world_size = launch ? launch->world_size : 1;
  if (resume_from) AGORA_RETURN_IF_ERROR(CheckResumeFits(recipe, run_dir, *log));
  if (launch)
    log->Info(absl::StrFormat("data parallel: rank %d of %d (local rank %d of %d), started by %s, %s backend",
                              launch->rank, launch->world_size, launch->local_rank, launch->local_world_size,
                              launch->launcher, communicator->backend() == CommBackend::kNccl ? "nccl" : "gloo"));
  log->Info(absl::StrCat("run folder ", run_dir.string(), " (resolved recipe in recipe.yaml); device ",
                         model_options.device.str(), ", dtype ", c10::toString(model_options.dtype)));

  // Tokenizer and data.
  AGORA_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer_owned, LoadTokenizer(recipe.model.path));
  std::shared_ptr<const Tokenizer> tokenizer = std::move(tokenizer_owned);
  AGORA_ASSIGN_OR_RETURN(LlamaConfig model_config, LoadLlamaConfig(fs::path(recipe.model.path) / "config.json"));
  AGORA_RETURN_IF_ERROR(CheckTokenizerFitsModel(*tokenizer, model_config.vocab_size, recipe.model.path));
  // The memory model's prediction for this rank (trainer/memory_model.h), checked against the measured peak at the
  // end of the run.
  const int64_t baseline_bytes = ResidentPeakBytes();
  double predicted_bytes = 0;
  if (absl::StatusOr<MemoryModelInputs> inputs = MemoryInputsFromRecipe(recipe, model_config, world_size); inputs.ok()) {
    inputs->sharding = launch ? recipe.distributed.sharding : ShardingLevel::kNone;
    const MemoryBreakdown predicted = EstimateTrainingMemory(*inputs);
    predicted_bytes = static_cast<double>(predicted.total);
    log->Info(absl::StrCat("memory model, per rank:\n", FormatMemoryBreakdown(predicted)));
  }
  AGORA_ASSIGN_OR_RETURN(TrainingDataOptions train_options, DataOptions(recipe, recipe.data.train, true));
  if (launch) {  // each rank reads its share of every global batch
    train_options.rank = launch->rank;
    train_options.world_size = launch->world_size;
  }
  AGORA_ASSIGN_OR_RETURN(std::unique_ptr<TrainingDataLoader> train, TrainingDataLoader::Open(train_options, tokenizer));
  Describe(*log, "train", train_options, train->stats());
  std::unique_ptr<TrainingDataLoader> validation;
  // Rank 0 evaluates the whole validation set; with sharded parameters every rank must run the forward (the
  // layers' weights are gathered from all of them), so every rank evaluates and rank 0 records.
  const ShardingLevel sharding = launch ? recipe.distributed.sharding : ShardingLevel::kNone;
  if ((leader || sharding == ShardingLevel::kParameters) && !recipe.data.validation.path.empty()) {
    AGORA_ASSIGN_OR_RETURN(TrainingDataOptions options, DataOptions(recipe, recipe.data.validation, false));
    AGORA_ASSIGN_OR_RETURN(validation, TrainingDataLoader::Open(options, tokenizer));
    Describe(*log, "validation", options, validation->stats());
  }
  // More rows a batch than the data has would make a batch of mostly empty rows, allocated all the same.
  if (const int64_t rows = train->stats().rows, wanted = train_options.batch_rows * train_options.world_size;
      wanted > rows)
    return absl::InvalidArgumentError(absl::StrFormat(
        "training.batch_size=%d%s asks for %d rows a step, but data.train gives %d rows of data.max_seq_len=%d "
        "tokens per epoch: lower training.batch_size (or give more data)",
        recipe.training.batch_size, train_options.world_size > 1 ? absl::StrCat(" x ", train_options.world_size, " ranks") : "",
        wanted, rows, train_options.max_seq_len));
  const int64_t batches_per_epoch = train->stats().batches_per_epoch;
  if (batches_per_epoch < recipe.training.gradient_accumulation_steps)
    return absl::InvalidArgumentError(absl::StrFormat(
        "data.train gives %d batches per epoch, fewer than training.gradient_accumulation_steps=%d",
        batches_per_epoch, recipe.training.gradient_accumulation_steps));

  // The model: a full fine-tune resumes from its checkpoint (a complete model folder); a LoRA run loads the base
  // from model.path and its adapters next.
  const bool lora = recipe.lora.rank > 0;
  // (A checkpoint sharded at level parameters has no model files: its rank files restore the weights below.)
  const fs::path weights_dir =
      resume_from && !lora && HasModelWeights(*resume_from) ? *resume_from : fs::path(recipe.model.path);
  AGORA_ASSIGN_OR_RETURN(LoadedModel loaded, LoadModel(weights_dir, model_options, recipe.model.on_nonfinite_weights));
  for (const std::string& what : loaded.nonfinite)
    log->Warning(absl::StrCat(what, "; loaded anyway (model.on_nonfinite_weights=warn)"));
  LlamaForCausalLM model = loaded.model;
  log->Info(head_loss == HeadLoss::kFused
                ? "loss: fused head + cross-entropy (kernels/loss), no [tokens, vocab] logits"
                : "loss: torch (logits, then cross-entropy)");
  std::optional<LoraConfig> lora_config;
  if (lora) {
    AGORA_ASSIGN_OR_RETURN(lora_config, SetUpLora(recipe, model, resume_from, *log));
  }
  std::vector<TrainableParameter> trainable;
  std::vector<NamedParameter> named;  // what sharding lays out
  int64_t parameter_count = 0, trained_count = 0;
  for (const auto& item : model->named_parameters()) {
    at::Tensor param = item.value();
    parameter_count += param.numel();
    const bool trained = !lora || IsLoraParameterName(item.key());  // frozen: no gradient, no optimizer state
    named.push_back({item.key(), param, trained, Decays(item.key())});
    if (!trained) continue;
    param.set_requires_grad(true);
    trainable.push_back({item.key(), param, Decays(item.key())});
    trained_count += param.numel();
  }
  const bool launched = communicator != nullptr;
  const std::unique_ptr<DataParallel> data_parallel =
      launched ? std::make_unique<DataParallel>(std::move(communicator), *log)
               : std::make_unique<DataParallel>(*log);  // alone
  if (sharding != ShardingLevel::kNone) {
    trainable = data_parallel->Shard(sharding, model, named, /*keep_adapters_whole=*/lora);
    int64_t shard_values = 0;
    for (const TrainableParameter& p : trainable) shard_values += p.param.numel();
    log->Info(absl::StrFormat("distributed.sharding=%s: this rank updates %d of the %d trained values (%d groups)%s",
                              ShardingLevelName(sharding), shard_values, trained_count, trainable.size(),
                              sharding == ShardingLevel::kParameters
                                  ? "; decoder layers' weights held as shards, gathered per layer"
                                  : ""));
  } else if (!launch && recipe.distributed.sharding != ShardingLevel::kNone) {
    log->Info(absl::StrCat("distributed.sharding=", ShardingLevelName(recipe.distributed.sharding),
                           " has nothing to split in a run of one process: training unsharded"));
  }
  const OptimizerRecipe& o = recipe.optimizer;
  AdamW optimizer(std::move(trainable), AdamWOptions{o.beta1, o.beta2, o.eps, o.weight_decay});
  data_parallel->Attach(optimizer, static_cast<int64_t>(recipe.distributed.bucket_mb * 1024 * 1024));
  std::string quantized_note;
  if (const auto quantized = QuantizedProjections(model); !quantized.empty()) {
    int64_t values = 0, bytes = 0;
    for (const auto& [name, linear] : quantized) {
      values += linear->quantized->numel();
      bytes += linear->quantized->bytes();
    }
    parameter_count += values;
    quantized_note = absl::StrFormat("; %d of them in %d projections stored %s, %.3f bytes each (%.1f MB)", values,
                                     quantized.size(), BaseQuantizationName(recipe.lora.quantize_base),
                                     static_cast<double>(bytes) / static_cast<double>(values), bytes / 1e6);
  }
  log->Info(absl::StrFormat("model %s: %d parameters, %d trained (%s)%s%s", recipe.model.path, parameter_count,
                            trained_count, lora ? "LoRA adapters in float32" : "all",
                            recipe.model.activation_checkpointing ? ", activation checkpointing" : "",
                            quantized_note));
  CheckpointManager checkpoints(run_dir / "checkpoints", recipe.checkpoint.keep_last, recipe.model.path, lora_config);

  // Where training stands.
  TrainerState state;
  state.seed = static_cast<uint64_t>(recipe.seed);
  state.world_size = world_size;
  const int64_t global_batch_rows = recipe.training.batch_size * world_size;
  if (resume_from) {
    AGORA_ASSIGN_OR_RETURN(state, RestoreTrainingState(*resume_from, optimizer, data_parallel->sharded()));
    if (state.world_size != world_size)
      log->Info(absl::StrFormat("resuming a run of %d ranks with %d: weights and optimizer state re-cut",
                                state.world_size, world_size));
    AGORA_RETURN_IF_ERROR(RemapDataPosition(state, global_batch_rows, batches_per_epoch, *resume_from, *log));
    state.world_size = world_size;
    AGORA_ASSIGN_OR_RETURN(std::vector<std::string> skipped, RestoreRngStates(state.rng_states));
    if (!skipped.empty())
      log->Warning(absl::StrCat("RNG states of ", absl::StrJoin(skipped, ", "), " not restored: no such device here"));
    if (state.seed != static_cast<uint64_t>(recipe.seed))
      log->Warning(absl::StrFormat("resuming a run seeded %d with seed=%d: the data order follows the checkpoint's",
                                   state.seed, recipe.seed));
    log->Info(absl::StrFormat("resumed from %s at step %d (epoch %d, batch %d)", resume_from->string(), state.step,
                              state.data.epoch, state.data.batch));
  } else {
    at::manual_seed(recipe.seed);
  }
  state.global_batch_rows = global_batch_rows;
  // A resumed run rewrites metrics.jsonl up to its checkpoint's step, a fresh one drops what attempts killed before
  // their first checkpoint wrote, so it reads like one uninterrupted run.
  std::unique_ptr<MetricsLog> metrics;
  if (leader) {
    AGORA_ASSIGN_OR_RETURN(metrics, MetricsLog::Open(run_dir / "metrics.jsonl", resume_from ? state.step : -1));
  }
  std::unique_ptr<TensorBoardWriter> tensorboard;
  if (leader && recipe.logging.tensorboard) {
    AGORA_ASSIGN_OR_RETURN(tensorboard, TensorBoardWriter::Create(run_dir / "tb"));
  }

  AGORA_ASSIGN_OR_RETURN(const LoopOptions options,
                         LoopOptionsFrom(recipe, batches_per_epoch, model_options.device));
  log->Info(absl::StrFormat("%d optimizer steps of %d x %d micro-batches (%d batches per epoch), %s schedule, lr %g",
                            options.total_steps, options.gradient_accumulation_steps, recipe.training.batch_size,
                            batches_per_epoch, ScheduleKindName(options.schedule.kind), options.schedule.lr));

  if (launched && sharding == ShardingLevel::kNone) {
    log->Info(absl::StrFormat("gradients are summed over %d ranks in %d buckets of up to %g MB, during the backward "
                              "of each step's last micro-batch",
                              data_parallel->world_size(), data_parallel->bucket_count(), recipe.distributed.bucket_mb));
  }
  AGORA_ASSIGN_OR_RETURN(std::unique_ptr<Objective> objective,
                         MakeObjective(recipe, train->format(), model_options, head_loss, *log));
  log->Info(absl::StrCat("objective ", objective->name()));
  model->train();  // LoRA dropout is active in training mode only; evaluation switches to eval() and back
  LoopParts parts{model,         objective.get(),   &optimizer,       train.get(),
                  validation.get(), &checkpoints, log.get(), metrics.get(),
                  tensorboard.get(), data_parallel.get()};
  // Written once everything above was checked, so a run that failed to start leaves the folder's recipe as it was.
  if (leader) AGORA_RETURN_IF_ERROR(WriteStringAtomically(run_dir / "recipe.yaml", RecipeToYaml(recipe)));
  InstallPreemptionHandlers();
  absl::StatusOr<LoopEnd> end = RunTrainLoop(options, parts, state);
  if (end.ok() && predicted_bytes > 0) {
    // The prediction against what this rank measured: the CUDA allocator's peak, or on the CPU the growth of the
    // resident peak since before the model was loaded (the process's own baseline left out).
    const double measured = model_options.device.is_cuda() ? PeakAllocatedBytes(model_options.device)
                                                           : static_cast<double>(ResidentPeakBytes() - baseline_bytes);
    log->Info(absl::StrFormat("memory: predicted %.1f MiB per rank, measured %.1f MiB (%+.1f%%)",
                              predicted_bytes / kMiB, measured / kMiB,
                              100.0 * (predicted_bytes - measured) / std::max(measured, 1.0)));
  }
  return end;
}

}  // namespace agora
