// A training recipe: a YAML file plus `dotted.key=value` overrides from the command line, resolved into one typed
// struct. Every key has a type and a default; an unknown key, a value of the wrong type or out of range is an
// error that names the key (and the file and line for values read from YAML). The resolved recipe is written into
// the run folder as YAML, every key spelled out, so a run can be repeated from its folder alone.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/chat_template.h"
#include "data/jsonl_dataset.h"
#include "data/record_formats.h"
#include "models/attention_backend.h"
#include "models/base_quantization.h"
#include "trainer/distributed/sharding_level.h"
#include "models/nonfinite_weights.h"
#include "trainer/lr_schedule.h"
#include "trainer/nonfinite_policy.h"

namespace agora {

// The recipe is nested as its YAML is: recipe.optimizer.lr is `optimizer: {lr: ...}`. A choice is an enum, parsed
// once here; device, model.dtype, distributed.backend and resume stay text because what they mean is only known on
// the machine that runs (how many GPUs, whether a checkpoint folder exists).

// The head's loss (recipe key `loss`).
enum class LossChoice {
  kAuto,   // fused on CUDA, torch on the CPU
  kFused,  // kernels/loss: no [tokens, vocab] logits (on the CPU the same tiling in ATen ops)
  kTorch,  // logits, then torch's cross-entropy
};

// What is optimised (trainer/objectives/).
enum class ObjectiveKind { kSft, kStableAlignment, kDpo };

struct ModelRecipe {
  std::string path;              // HF folder: config.json, safetensors, tokenizer
  std::string dtype = "auto";    // auto (bfloat16 on CUDA, float32 on CPU) | float32 | bfloat16
  bool activation_checkpointing = false;
  AttentionBackend attention = AttentionBackend::kAgora;  // agora (Agora's flash kernels on CUDA) | sdpa
  // NaN or Inf in the weights read (model.path, a full fine-tune's checkpoint): refuse | warn (load and log them)
  NonfiniteWeights on_nonfinite_weights = NonfiniteWeights::kRefuse;

  bool operator==(const ModelRecipe&) const = default;
};

// models/lora.h: rank 0 trains every weight; rank >= 1 freezes the model and trains adapters.
struct LoraRecipe {
  int64_t rank = 0;
  double alpha = 16.0;
  double dropout = 0.0;
  std::string targets = "q_proj,v_proj";  // comma-separated: q_proj k_proj v_proj o_proj gate_proj ...
  bool use_rslora = false;                // scaling alpha / sqrt(rank) instead of alpha / rank
  std::string init_from;                  // a PEFT adapter folder to start from ("" = fresh adapters)
  // The frozen base's projections: none | nf4 (QLoRA) | int8. Adapters stay fp32 and load in PEFT over the original
  // weights, as bitsandbytes + PEFT users' do.
  BaseQuantization quantize_base = BaseQuantization::kNone;

  bool operator==(const LoraRecipe&) const = default;
};

struct DatasetRecipe {
  std::string path;  // a JSONL file; "" = none (only allowed for data.validation)
  // auto | messages | prompt_response | sharegpt | dromedary | sandbox_groups | preference (data/record_formats.h)
  RecordFormat format = RecordFormat::kAuto;
  // Field names in the file, for datasets whose keys differ from the defaults.
  std::string messages_field = "messages";
  std::string role_field = "role";
  std::string content_field = "content";
  std::string prompt_field = "prompt";
  std::string response_field = "response";
  std::string system_field = "system";

  bool operator==(const DatasetRecipe&) const = default;
};

struct DataRecipe {
  DatasetRecipe train;
  DatasetRecipe validation;
  ChatTemplateKind chat_template = ChatTemplateKind::kLlama2;  // data.template: llama2 | llama3 | plain | vicuna
  int64_t max_seq_len = 2048;
  bool append_eos = false;            // sandbox_groups responses end with EOS
  std::string meta_prompts;           // dromedary meta-prompt files, comma-separated
  int64_t max_source_len = 512;       // dromedary source, its last tokens kept
  int64_t max_target_len = 512;       // dromedary target, its first tokens kept
  bool packing = true;
  bool shuffle = true;
  BadLinePolicy on_bad_line = BadLinePolicy::kError;  // error | skip

  bool operator==(const DataRecipe&) const = default;
};

struct StableAlignmentRecipe {
  int64_t responses_per_query = 3;  // K responses drawn per query
  double rating_scale = 7.0;
  double margin = 1.0;
  double ratio = 0.2;  // the weight of the ranking penalty (lambda)

  bool operator==(const StableAlignmentRecipe&) const = default;
};

struct DpoRecipe {
  double beta = 0.1;

  bool operator==(const DpoRecipe&) const = default;
};

struct TrainingRecipe {
  int64_t batch_size = 1;  // rows (of max_seq_len tokens, packed; or one record's sequences, padded) per micro-batch
  int64_t gradient_accumulation_steps = 1;
  int64_t epochs = 1;
  int64_t max_steps = 0;         // optimizer steps; 0 = run `epochs` epochs
  int64_t stop_after_steps = 0;  // checkpoint and exit after this many steps without changing the schedule
                                 // (time-limited jobs); 0 = off
  double clip_grad_norm = 1.0;   // global L2 norm; 0 = off
  NonFinitePolicy on_nonfinite = NonFinitePolicy::kSkip;  // skip | stop

  bool operator==(const TrainingRecipe&) const = default;
};

// AdamW; no weight decay on norms and biases.
struct OptimizerRecipe {
  double lr = 2e-5;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;

  bool operator==(const OptimizerRecipe&) const = default;
};

struct SchedulerRecipe {
  ScheduleKind name = ScheduleKind::kCosine;  // cosine | constant
  int64_t warmup_steps = 0;
  double warmup_ratio = 0.0;  // warm-up as a fraction of the steps (if warmup_steps = 0)
  double min_lr_ratio = 0.0;  // cosine floor as a fraction of lr

  bool operator==(const SchedulerRecipe&) const = default;
};

struct EvalRecipe {
  int64_t every_steps = 0;  // 0 = only at the end (when there is validation data)
  int64_t max_batches = 0;  // 0 = the whole validation set

  bool operator==(const EvalRecipe&) const = default;
};

struct CheckpointRecipe {
  int64_t every_steps = 0;  // 0 = only at the end (and on SIGTERM/SIGINT)
  int64_t keep_last = 2;

  bool operator==(const CheckpointRecipe&) const = default;
};

struct LoggingRecipe {
  int64_t log_every_steps = 1;
  bool tensorboard = true;

  bool operator==(const LoggingRecipe&) const = default;
};

// `agora simulate` (simulate/): which seed's society makes the data, with which models and prompts.
enum class SimulationMethod { kSandbox, kMatrix, kSelfAlign };

struct SandboxRecipe {
  int64_t grid = 3;                 // grid x grid agents; agent id = row * grid + col
  int64_t rounds = 0;               // 0: until the questions run out (round r asks questions r*grid^2 ...)
  int64_t interactees = 4;          // neighbours (within grid/2) asked for feedback on each draft
  std::string personas;             // file: one persona a line, "name: description", permissive to careful
  double memory_similarity = 0.7;   // recall a past answer whose question is at least this similar (TF-IDF cosine)
  double self_critic_ratio = 0.1;   // sandbox-to-groups of the logs (Stable Alignment's collect_data defaults)
  double realignment_ratio = 0.1;

  bool operator==(const SandboxRecipe&) const = default;
};

struct MatrixRecipe {
  int64_t min_roles = 3;  // roles a scene touches: the model's list, topped up from fallback_roles
  int64_t max_roles = 7;
  int64_t plan_steps = 3;      // the asker's steps after following the answer: one incident each
  int64_t max_incidents = 12;  // reactions judged per scene, at most
  std::string fallback_roles = "family member,neighbour,police officer,doctor,teacher,shop owner,journalist";

  bool operator==(const MatrixRecipe&) const = default;
};

struct SelfAlignRecipe {
  std::string seed_topics;          // JSONL {question_type, topic, question}: the red-teaming seeds
  int64_t topics_per_type = 4;      // brainstormed topics kept per question type
  int64_t questions_per_topic = 3;  // generated questions kept per (type, topic)
  double max_rouge_l = 0.7;         // a question this similar (ROUGE-L F) to a kept one is a near duplicate
  std::string principles;           // file, one principle a line
  std::string exemplars;            // file: the in-context dialogues after the principles
  double sorry_bias = -100.0;       // logit bias on the first token of "Sorry" (as SELF-ALIGN bans it)
  int64_t min_answer_chars = 160;   // shorter complete answers are dropped (Dromedary's filter)

  bool operator==(const SelfAlignRecipe&) const = default;
};

struct SimulateRecipe {
  SimulationMethod method = SimulationMethod::kSandbox;
  std::string questions;  // TXT (a question a line) or JSONL ({"question"|"prompt"|"instruction": ...})
  int64_t max_questions = 0;  // 0: all
  std::string prompts;        // the prompt templates' folder; "" = simulate/prompts/<method>
  std::string judge_model;    // observers (sandbox) and the modulator (matrix); "" = the policy itself
  std::string chat_template;  // "" = prompts as plain text after BOS; else each prompt is a user turn
  int64_t max_new_tokens = 64;
  double temperature = 1.0;        // the policy: answers, and the peers' ratings (the seeds: 1.0 / 0.2 / 0.7)
  double top_p = 1.0;
  double judge_temperature = 0.0;  // observers and the modulator; 0 = the most likely choice
  int64_t batch_questions = 64;    // questions simulated together (matrix, self_align); sandbox: a round
  int64_t max_sequences = 32;      // the engine's cache slots
  int64_t prefix_cache_blocks = 4096;
  SandboxRecipe sandbox;
  MatrixRecipe matrix;
  SelfAlignRecipe self_align;

  bool operator==(const SimulateRecipe&) const = default;
};

// `agora simulate` with rounds >= 1: simulate with the current model -> train on what it made -> eval -> repeat.
struct ClosedLoopRecipe {
  int64_t rounds = 0;       // 0: simulate once, no training
  std::string eval_tasks;   // agora eval task files, comma-separated, scored before round 1 and after each

  bool operator==(const ClosedLoopRecipe&) const = default;
};

// Used when a launcher (torchrun, srun, mpirun, agora launch) started several ranks.
struct DistributedRecipe {
  std::string backend = "auto";  // auto (nccl on CUDA, gloo on the CPU) | nccl | gloo
  double bucket_mb = 25.0;       // gradient all-reduce bucket size, MB of fp32 gradients
  int64_t timeout_s = 1800;      // a rank that never arrives, or a collective that never ends
  ShardingLevel sharding = ShardingLevel::kNone;  // none | optimizer | gradients | parameters

  bool operator==(const DistributedRecipe&) const = default;
};

struct Recipe {
  ModelRecipe model;
  LoraRecipe lora;
  std::string device = "auto";  // auto | cpu | cuda | cuda:N
  LossChoice loss = LossChoice::kAuto;
  int64_t seed = 1234;
  std::string output_dir;  // the run folder: recipe.yaml, log.txt, metrics.jsonl, tb/, checkpoints/
  DataRecipe data;
  ObjectiveKind objective = ObjectiveKind::kSft;  // sft | stable_alignment | dpo
  StableAlignmentRecipe stable_alignment;
  DpoRecipe dpo;
  TrainingRecipe training;
  OptimizerRecipe optimizer;
  SchedulerRecipe scheduler;
  EvalRecipe eval;
  CheckpointRecipe checkpoint;
  std::string resume = "auto";  // auto | none | a checkpoint folder
  LoggingRecipe logging;
  DistributedRecipe distributed;
  SimulateRecipe simulate;
  ClosedLoopRecipe closed_loop;

  // Field by field; a new field needs a row in recipe.cpp's key table, or the round-trip test fails for it.
  bool operator==(const Recipe&) const = default;
};

// The YAML spellings: "auto" | "fused" | "torch"; "sft" | "stable_alignment" | "dpo".
std::string LossChoiceName(LossChoice choice);
std::string ObjectiveKindName(ObjectiveKind kind);
std::string SimulationMethodName(SimulationMethod method);  // "sandbox" | "matrix" | "self_align"

// YAML values: strings are any scalar ("" for an empty value); integers are decimal (1.5 and 1e3 are refused);
// numbers accept integers and decimal or exponent notation (1e-4, 0.0001) and must be finite; booleans are YAML 1.2's
// true/false/True/False/TRUE/FALSE (not YAML 1.1's yes/no/on/off). A quoted value is a string, never a number or
// boolean. A file may also spell a nested key dotted ("optimizer.lr: 1e-4"); a key given twice is an error.
// Overrides are `dotted.key=value`, the value read as one YAML scalar with the same rules; later ones win.
// Ranges, choices and required keys (model.path, data.train.path, output_dir) are checked once every source is
// applied, so an override can fix a value the file got wrong. Errors are InvalidArgument and name the key and
// where its value came from: `file:line` (1-based) or the override.

// Reads `path` and applies `overrides` ("data.max_seq_len=512", "optimizer.lr=1e-4", "model.path=/x") in order.
// Relative paths in the file stay as written (resolved against the current directory by the user of the recipe).
absl::StatusOr<Recipe> LoadRecipe(const std::filesystem::path& path, const std::vector<std::string>& overrides);

// The same from YAML text; `source_name` is used in error messages in place of a file name.
absl::StatusOr<Recipe> ParseRecipe(const std::string& yaml_text, const std::string& source_name,
                                   const std::vector<std::string>& overrides);

// Every key with its value as RecipeToYaml writes it ("optimizer.lr" -> "0.0001"), in that order.
std::vector<std::pair<std::string, std::string>> RecipeValues(const Recipe& recipe);

// The resolved recipe as YAML, every key present; ParseRecipe(RecipeToYaml(r)) == r.
std::string RecipeToYaml(const Recipe& recipe);

}  // namespace agora
