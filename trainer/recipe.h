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

namespace agora {

struct DatasetRecipe {
  std::string path;          // a JSONL file; "" = none (only allowed for data.validation)
  // auto | messages | prompt_response | sharegpt | dromedary | sandbox_groups | preference (data/jsonl_dataset.h)
  std::string format = "auto";
  // Field names in the file, for datasets whose keys differ from the defaults.
  std::string messages_field = "messages";
  std::string role_field = "role";
  std::string content_field = "content";
  std::string prompt_field = "prompt";
  std::string response_field = "response";
  std::string system_field = "system";

  bool operator==(const DatasetRecipe&) const = default;
};

struct Recipe {
  // model.*
  std::string model_path;             // HF folder: config.json, safetensors, tokenizer
  std::string model_dtype = "auto";   // auto (bfloat16 on CUDA, float32 on CPU) | float32 | bfloat16
  bool activation_checkpointing = false;
  std::string attention = "agora";    // model.attention: agora (Agora's flash kernels on CUDA) | sdpa (torch SDPA)

  // lora.* (models/lora.h): rank 0 trains every weight; rank >= 1 freezes the model and trains adapters.
  int64_t lora_rank = 0;
  double lora_alpha = 16.0;
  double lora_dropout = 0.0;
  std::string lora_targets = "q_proj,v_proj";  // comma-separated: q_proj k_proj v_proj o_proj gate_proj ...
  bool lora_use_rslora = false;                // scaling alpha / sqrt(rank) instead of alpha / rank
  std::string lora_init_from;                  // a PEFT adapter folder to start from ("" = fresh adapters)

  std::string device = "auto";        // auto | cpu | cuda | cuda:N
  std::string loss = "auto";          // the head's loss: auto (fused on CUDA, torch on CPU) | fused | torch
  int64_t seed = 1234;
  std::string output_dir;             // the run folder: recipe.yaml, log.txt, metrics.jsonl, tb/, checkpoints/

  // data.*
  DatasetRecipe train_data;           // data.train.*
  DatasetRecipe validation_data;      // data.validation.*
  std::string chat_template = "llama2";  // data.template: llama2 | llama3 | plain | vicuna
  int64_t max_seq_len = 2048;         // data.max_seq_len
  bool append_eos = false;            // data.append_eos: sandbox_groups responses end with EOS
  std::string meta_prompts;           // data.meta_prompts: dromedary meta-prompt files, comma-separated
  int64_t max_source_len = 512;       // data.max_source_len: dromedary source, its last tokens kept
  int64_t max_target_len = 512;       // data.max_target_len: dromedary target, its first tokens kept
  bool packing = true;                // data.packing
  bool shuffle = true;                // data.shuffle
  std::string on_bad_line = "error";  // data.on_bad_line: error | skip

  // What is optimised (trainer/objectives/): sft | stable_alignment | dpo.
  std::string objective = "sft";
  int64_t responses_per_query = 3;   // stable_alignment.responses_per_query: K responses drawn per query
  double rating_scale = 7.0;         // stable_alignment.rating_scale
  double margin = 1.0;               // stable_alignment.margin
  double ratio = 0.2;                // stable_alignment.ratio: the weight of the ranking penalty (lambda)
  double dpo_beta = 0.1;             // dpo.beta

  // training loop
  int64_t batch_size = 1;                  // training.batch_size: rows (of max_seq_len tokens, packed; or one
                                           // record's sequences, padded) per micro-batch
  int64_t gradient_accumulation_steps = 1; // training.gradient_accumulation_steps
  int64_t epochs = 1;                      // training.epochs
  int64_t max_steps = 0;                   // training.max_steps: optimizer steps; 0 = run `epochs` epochs
  int64_t stop_after_steps = 0;            // training.stop_after_steps: checkpoint and exit after this many
                                           // steps without changing the schedule (time-limited jobs); 0 = off
  double clip_grad_norm = 1.0;             // training.clip_grad_norm: global L2 norm; 0 = off
  std::string on_nonfinite = "skip";       // training.on_nonfinite: skip | stop

  // optimizer.* (AdamW; no weight decay on norms and biases)
  double lr = 2e-5;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;

  // scheduler.*
  std::string scheduler = "cosine";  // scheduler.name: cosine | constant
  int64_t warmup_steps = 0;          // scheduler.warmup_steps
  double warmup_ratio = 0.0;         // scheduler.warmup_ratio: warm-up as a fraction of the steps (if steps = 0)
  double min_lr_ratio = 0.0;         // scheduler.min_lr_ratio: cosine floor as a fraction of lr

  // eval.*
  int64_t eval_every_steps = 0;      // 0 = only at the end (when there is validation data)
  int64_t eval_max_batches = 0;      // 0 = the whole validation set

  // checkpoint.*
  int64_t checkpoint_every_steps = 0;  // 0 = only at the end (and on SIGTERM/SIGINT)
  int64_t keep_last = 2;               // checkpoint.keep_last
  std::string resume = "auto";         // resume: auto | none | a checkpoint folder

  // logging.*
  int64_t log_every_steps = 1;
  bool tensorboard = true;

  // distributed.* (used when a launcher — torchrun, srun, mpirun, agora launch — started several ranks)
  std::string distributed_backend = "auto";  // auto (nccl on CUDA, gloo on the CPU) | nccl | gloo
  double bucket_mb = 25.0;                   // gradient all-reduce bucket size, MB of fp32 gradients
  int64_t distributed_timeout_s = 1800;      // a rank that never arrives, or a collective that never ends

  // Field by field; a new field needs a row in recipe.cpp's key table, or the round-trip test fails for it.
  bool operator==(const Recipe&) const = default;
};

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

// The resolved recipe as YAML, every key present; ParseRecipe(RecipeToYaml(r)) == r.
std::string RecipeToYaml(const Recipe& recipe);

}  // namespace agora
