// Recipes: the shipped files parse, defaults and nested values land in the right fields, every class of error names
// the key and where the value came from, overrides apply in order, and RecipeToYaml reads back to the same recipe.
#include "trainer/recipe.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace agora {
namespace {

using ::testing::HasSubstr;

// The three required keys, nothing else.
constexpr char kMinimal[] =
    "model:\n"
    "  path: m\n"
    "output_dir: out\n"
    "data:\n"
    "  train:\n"
    "    path: t.jsonl\n";

absl::StatusOr<Recipe> Parse(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  return ParseRecipe(yaml, "test.yaml", overrides);
}

// The error text of `result`, failing the test when it is not an InvalidArgument error.
std::string ErrorOf(const absl::StatusOr<Recipe>& result) {
  EXPECT_FALSE(result.ok()) << "expected an error, got a recipe";
  if (result.ok()) return "";
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  return std::string(result.status().message());
}

std::filesystem::path EnvDir(const char* variable) {
  const char* value = std::getenv(variable);
  if (value == nullptr || *value == '\0') ADD_FAILURE() << variable << " is not set: run this test through ctest";
  return value == nullptr ? "" : value;
}

TEST(Recipe, EveryShippedRecipeParsesAndRoundTrips) {
  const std::filesystem::path dir = EnvDir("AGORA_SOURCE_DIR") / "recipes";
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    ++count;
    SCOPED_TRACE(entry.path().string());
    absl::StatusOr<Recipe> recipe = LoadRecipe(entry.path(), {});
    ASSERT_TRUE(recipe.ok()) << recipe.status();
    absl::StatusOr<Recipe> again = ParseRecipe(RecipeToYaml(*recipe), "emitted", {});
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_TRUE(*again == *recipe) << RecipeToYaml(*again);
  }
  EXPECT_GE(count, 3);
}

TEST(Recipe, ShippedRecipesHoldTheirDocumentedSettings) {
  const std::filesystem::path dir = EnvDir("AGORA_SOURCE_DIR") / "recipes";
  absl::StatusOr<Recipe> tiny = LoadRecipe(dir / "tiny_demo.yaml", {});
  ASSERT_TRUE(tiny.ok()) << tiny.status();
  EXPECT_EQ(tiny->model.path, "assets/tiny-llama");
  EXPECT_EQ(tiny->data.train.path, "assets/data/sandbox_demo/train.jsonl");
  EXPECT_EQ(tiny->data.validation.path, "assets/data/sandbox_demo/valid.jsonl");
  EXPECT_EQ(tiny->data.chat_template, ChatTemplateKind::kLlama2);
  EXPECT_EQ(tiny->data.max_seq_len, 256);
  EXPECT_EQ(tiny->training.batch_size, 4);
  EXPECT_EQ(tiny->optimizer.lr, 1e-2);
  EXPECT_EQ(tiny->lora.rank, 16);
  EXPECT_EQ(tiny->lora.targets, "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj");

  absl::StatusOr<Recipe> llama2 = LoadRecipe(dir / "llama2_7b_full_sft.yaml", {});
  ASSERT_TRUE(llama2.ok()) << llama2.status();
  EXPECT_EQ(llama2->data.chat_template, ChatTemplateKind::kLlama2);
  EXPECT_EQ(llama2->model.dtype, "bfloat16");
  EXPECT_TRUE(llama2->model.activation_checkpointing);
  EXPECT_EQ(llama2->optimizer.lr, 2e-5);

  absl::StatusOr<Recipe> llama3 = LoadRecipe(dir / "llama3_8b_full_sft.yaml", {"model.path=/elsewhere"});
  ASSERT_TRUE(llama3.ok()) << llama3.status();
  EXPECT_EQ(llama3->data.chat_template, ChatTemplateKind::kLlama3);
  EXPECT_EQ(llama3->model.path, "/elsewhere");
  EXPECT_EQ(llama3->lora.rank, 0) << "full fine-tuning";

  for (const char* name : {"llama2_7b_lora_sft.yaml", "llama3_8b_lora_sft.yaml"}) {
    absl::StatusOr<Recipe> lora = LoadRecipe(dir / name, {});
    ASSERT_TRUE(lora.ok()) << lora.status();
    EXPECT_EQ(lora->lora.rank, 8) << name;
    EXPECT_EQ(lora->lora.alpha, 16) << name;
    EXPECT_EQ(lora->lora.dropout, 0.0) << name << ": activation checkpointing needs it";
    EXPECT_TRUE(lora->model.activation_checkpointing) << name;
    EXPECT_EQ(lora->model.dtype, "bfloat16") << name;
  }
}

TEST(Recipe, MinimalRecipeKeepsEveryDefault) {
  absl::StatusOr<Recipe> recipe = Parse(kMinimal);
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  Recipe expected;
  expected.model.path = "m";
  expected.output_dir = "out";
  expected.data.train.path = "t.jsonl";
  EXPECT_TRUE(*recipe == expected) << RecipeToYaml(*recipe);
}

TEST(Recipe, NestedSectionsDottedKeysAndEmptySections) {
  absl::StatusOr<Recipe> recipe = Parse(std::string(kMinimal) +
                                        "  validation:\n"
                                        "    path: v.jsonl\n"
                                        "    format: prompt_response\n"
                                        "    prompt_field: question\n"
                                        "  template: llama3\n"
                                        "  max_seq_len: 512\n"
                                        "  packing: False\n"
                                        "training:\n"
                                        "  batch_size: 8\n"
                                        "  on_nonfinite: stop\n"
                                        "optimizer.lr: 1e-4\n"  // a dotted key in the file
                                        "scheduler: {name: constant, min_lr_ratio: 0.5}\n"
                                        "eval:\n"  // every key commented out
                                        "device: cuda:1\n");
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  EXPECT_EQ(recipe->data.validation.path, "v.jsonl");
  EXPECT_EQ(recipe->data.validation.format, RecordFormat::kPromptResponse);
  EXPECT_EQ(recipe->data.validation.prompt_field, "question");
  EXPECT_EQ(recipe->data.train.prompt_field, "prompt");
  EXPECT_EQ(recipe->data.chat_template, ChatTemplateKind::kLlama3);
  EXPECT_EQ(recipe->data.max_seq_len, 512);
  EXPECT_FALSE(recipe->data.packing);
  EXPECT_EQ(recipe->training.batch_size, 8);
  EXPECT_EQ(recipe->training.on_nonfinite, NonFinitePolicy::kStop);
  EXPECT_EQ(recipe->optimizer.lr, 1e-4);
  EXPECT_EQ(recipe->scheduler.name, ScheduleKind::kConstant);
  EXPECT_EQ(recipe->scheduler.min_lr_ratio, 0.5);
  EXPECT_EQ(recipe->device, "cuda:1");
}

TEST(Recipe, NumbersBooleansAndStringsFollowYamlSpelling) {
  struct Case {
    std::string override_text;
    double OptimizerRecipe::*member;
    double expected;
  };
  for (const Case& c : std::vector<Case>{{"optimizer.lr=1e-4", &OptimizerRecipe::lr, 1e-4},
                                         {"optimizer.lr=0.0001", &OptimizerRecipe::lr, 0.0001},
                                         {"optimizer.lr=3", &OptimizerRecipe::lr, 3.0},
                                         {"optimizer.lr=+2.5E-5", &OptimizerRecipe::lr, 2.5e-5},
                                         {"optimizer.eps=.5", &OptimizerRecipe::eps, 0.5}}) {
    absl::StatusOr<Recipe> recipe = Parse(kMinimal, {c.override_text});
    ASSERT_TRUE(recipe.ok()) << c.override_text << ": " << recipe.status();
    EXPECT_EQ(recipe->optimizer.*c.member, c.expected) << c.override_text;
  }
  for (const std::string spelling : {"true", "True", "TRUE", "false", "False", "FALSE"}) {
    absl::StatusOr<Recipe> recipe = Parse(kMinimal, {"logging.tensorboard=" + spelling});
    ASSERT_TRUE(recipe.ok()) << spelling << ": " << recipe.status();
    EXPECT_EQ(recipe->logging.tensorboard, spelling[0] == 't' || spelling[0] == 'T') << spelling;
  }
  absl::StatusOr<Recipe> recipe = Parse(kMinimal, {"training.epochs=+3", "model.path=123", "output_dir='true'"});
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  EXPECT_EQ(recipe->training.epochs, 3);
  EXPECT_EQ(recipe->model.path, "123");  // a string key takes any scalar
  EXPECT_EQ(recipe->output_dir, "true");
}

TEST(Recipe, WrongTypesNameKeyAndLine) {
  struct Case {
    std::string value;  // of training.batch_size (line 8) or the key given in `key`
    std::string expected;
    std::string key = "batch_size";
  };
  for (const Case& c : std::vector<Case>{
           {"four", "test.yaml:8: training.batch_size: expected an integer, got 'four'"},
           {"1.5", "test.yaml:8: training.batch_size: expected an integer, got '1.5'"},
           {"1e3", "expected an integer, got '1e3'"},
           {"\"4\"", "expected an integer, got the quoted string '4' (quoted values are strings)"},
           {"", "test.yaml:8: training.batch_size: expected an integer, got nothing"},
           {"99999999999999999999", "'99999999999999999999' is out of range for an integer"},
           {"abc", "test.yaml:8: training.clip_grad_norm: expected a number, got 'abc'", "clip_grad_norm"},
           {".inf", "expected a number, got '.inf'", "clip_grad_norm"},
           {"inf", "expected a number, got 'inf' (it must be finite)", "clip_grad_norm"},
           {"1e999", "'1e999' is out of range for a number", "clip_grad_norm"},
       }) {
    const std::string yaml = std::string(kMinimal) + "training:\n  " + c.key + ": " + c.value + "\n";
    EXPECT_THAT(ErrorOf(Parse(yaml)), HasSubstr(c.expected)) << yaml;
  }
  EXPECT_THAT(ErrorOf(Parse(std::string(kMinimal) + "data.packing: yes\n")),
              HasSubstr("test.yaml:7: data.packing: expected true or false, got 'yes' (YAML 1.2 booleans"));
}

TEST(Recipe, MapsListsAndScalarsInTheWrongPlace) {
  EXPECT_THAT(ErrorOf(Parse(std::string(kMinimal) + "seed:\n  value: 3\n")),
              HasSubstr("test.yaml:7: seed: expected an integer, got a map"));
  EXPECT_THAT(ErrorOf(Parse(std::string(kMinimal) + "training:\n  batch_size: [1, 2]\n")),
              HasSubstr("test.yaml:8: training.batch_size: expected an integer, got a list"));
  EXPECT_THAT(ErrorOf(Parse(std::string(kMinimal) + "training: 4\n")),
              HasSubstr("test.yaml:7: training: expected a map of batch_size, gradient_accumulation_steps"));
  EXPECT_THAT(ErrorOf(Parse("eval:\n  - 1\n")), HasSubstr("test.yaml:1: eval: expected a map of every_steps, "
                                                          "max_batches; got a list"));
  EXPECT_THAT(ErrorOf(Parse("- a\n- b\n")), HasSubstr("test.yaml:1: a recipe is a map of sections and keys"));
  EXPECT_THAT(ErrorOf(Parse("model: [a\n")), HasSubstr("test.yaml:"));
  EXPECT_THAT(ErrorOf(Parse("model: [a\n")), HasSubstr("invalid YAML"));
  EXPECT_THAT(ErrorOf(Parse("a: 1\n---\nb: 2\n")), HasSubstr("test.yaml: holds more than one YAML document"));
  // Found by fuzzing: yaml-cpp 0.7's LoadAll never returns on these (a null document each turn, memory growing).
  EXPECT_THAT(ErrorOf(Parse(",")), HasSubstr("test.yaml: holds more than one YAML document"));
  EXPECT_THAT(ErrorOf(Parse("# a comment\n, evaluation checkpoint# more,")), HasSubstr("test.yaml:"));
  // Found by fuzzing: control characters read into a string that yaml-cpp could not write back the same.
  EXPECT_THAT(ErrorOf(Parse("model:\n  path: a\x11" "b\n")), HasSubstr("test.yaml:2:10: control character 0x11"));
  EXPECT_THAT(ErrorOf(Parse("model:\n  path: \xc3\xa9\xfc\n")), HasSubstr("test.yaml:2:10: byte 0xfc is not UTF-8"));
  EXPECT_THAT(ErrorOf(Parse("model:\n  path: a\n", {"model.path=\xed\xa0\x80"})), HasSubstr("is not UTF-8"));
}

TEST(Recipe, UnknownKeysSuggestTheClosest) {
  EXPECT_THAT(ErrorOf(Parse(std::string(kMinimal) + "optimiser:\n  lr: 1e-4\n")),
              HasSubstr("test.yaml:7: unknown key 'optimiser' (did you mean 'optimizer'?)"));
  EXPECT_THAT(ErrorOf(Parse(std::string(kMinimal) + "optimizer:\n  lrr: 1e-4\n")),
              HasSubstr("test.yaml:8: unknown key 'optimizer.lrr' (did you mean 'optimizer.lr'?)"));
  EXPECT_THAT(ErrorOf(Parse(std::string(kMinimal) + "  tempalte: llama3\n")),
              HasSubstr("test.yaml:7: unknown key 'data.tempalte' (did you mean 'data.template'?)"));
  EXPECT_THAT(ErrorOf(Parse(std::string(kMinimal) + "training:\n  lr: 1e-4\n")),
              HasSubstr("unknown key 'training.lr' (did you mean 'optimizer.lr'?)"));
  EXPECT_THAT(ErrorOf(Parse(std::string(kMinimal) + "wandb: true\n")),
              HasSubstr("unknown key 'wandb' (known keys at the top level: model, lora, device, loss, seed, output_dir, data,"));
  EXPECT_THAT(ErrorOf(Parse(kMinimal, {"optimiser.lr=1e-4"})),
              HasSubstr("override 'optimiser.lr=1e-4': unknown key 'optimiser.lr' (did you mean 'optimizer.lr'?)"));
}

TEST(Recipe, OutOfRangeValuesNameTheKey) {
  struct Case {
    std::string override_text;
    std::string expected;
  };
  for (const Case& c : std::vector<Case>{
           {"training.batch_size=0", "must be >= 1, got 0"},
           {"training.gradient_accumulation_steps=0", "must be >= 1, got 0"},
           {"training.epochs=0", "must be >= 1, got 0"},
           {"training.max_steps=-1", "must be >= 0, got -1"},
           {"training.stop_after_steps=-1", "must be >= 0, got -1"},
           {"training.clip_grad_norm=-0.5", "must be >= 0, got -0.5"},
           {"data.max_seq_len=1", "must be >= 2, got 1"},
           {"optimizer.lr=0", "must be > 0, got 0.0"},
           {"optimizer.beta1=1", "must be in [0, 1), got 1.0"},
           {"optimizer.beta2=-0.1", "must be in [0, 1), got -0.1"},
           {"optimizer.eps=0", "must be > 0, got 0.0"},
           {"optimizer.weight_decay=-1e-3", "must be >= 0, got -0.001"},
           {"scheduler.warmup_steps=-1", "must be >= 0, got -1"},
           {"scheduler.min_lr_ratio=1.5", "must be in [0, 1], got 1.5"},
           {"eval.every_steps=-1", "must be >= 0, got -1"},
           {"eval.max_batches=-1", "must be >= 0, got -1"},
           {"checkpoint.every_steps=-5", "must be >= 0, got -5"},
           {"checkpoint.keep_last=0", "must be >= 1, got 0"},
           {"logging.log_every_steps=0", "must be >= 1, got 0"},
           {"seed=-1", "must be >= 0, got -1"},
       }) {
    EXPECT_EQ(ErrorOf(Parse(kMinimal, {c.override_text})), "override '" + c.override_text + "': " + c.expected);
  }
  // From the file: the error points at the line.
  EXPECT_EQ(ErrorOf(Parse(std::string(kMinimal) + "checkpoint:\n  keep_last: 0\n")),
            "test.yaml:8: checkpoint.keep_last: must be >= 1, got 0");
  // Boundaries that are allowed.
  EXPECT_TRUE(Parse(kMinimal, {"optimizer.beta1=0", "scheduler.min_lr_ratio=1", "training.clip_grad_norm=0",
                               "data.max_seq_len=2", "optimizer.weight_decay=0"})
                  .ok());
}

TEST(Recipe, EnumsListTheAllowedValues) {
  struct Case {
    std::string override_text;
    std::string expected;
  };
  for (const Case& c : std::vector<Case>{
           {"model.dtype=float16", "'float16' is not one of auto|float32|bfloat16"},
           {"model.attention=flash", "'flash' is not one of agora|sdpa"},
           {"data.template=chatml", "'chatml' is not one of llama2|llama3|plain|vicuna"},
           {"data.train.format=fastchat",
            "'fastchat' is not one of auto|messages|prompt_response|sharegpt|dromedary|sandbox_groups|preference"},
           {"data.validation.format=x",
            "'x' is not one of auto|messages|prompt_response|sharegpt|dromedary|sandbox_groups|preference"},
           {"objective=ppo", "'ppo' is not one of sft|stable_alignment|dpo"},
           {"data.on_bad_line=warn", "'warn' is not one of error|skip"},
           {"training.on_nonfinite=ignore", "'ignore' is not one of skip|stop"},
           {"scheduler.name=linear", "'linear' is not one of cosine|constant"},
           {"device=gpu", "'gpu' is not one of auto|cpu|cuda|cuda:N"},
           {"device=cuda:", "expected a string, got a map"},  // YAML reads "cuda:" as a map,
           {"device=cuda:x", "'cuda:x' is not one of auto|cpu|cuda|cuda:N"},
           {"device=cuda:-1", "'cuda:-1' is not one of auto|cpu|cuda|cuda:N"},
       }) {
    EXPECT_EQ(ErrorOf(Parse(kMinimal, {c.override_text})), "override '" + c.override_text + "': " + c.expected)
        << c.override_text;
  }
  for (const std::string device : {"auto", "cpu", "cuda", "cuda:0", "cuda:12"})
    EXPECT_TRUE(Parse(kMinimal, {"device=" + device}).ok()) << device;
}

TEST(Recipe, RequiredKeys) {
  EXPECT_EQ(ErrorOf(Parse("output_dir: o\ndata.train.path: t\n")),
            "model.path is required: set it in test.yaml or override it with model.path=...");
  EXPECT_THAT(ErrorOf(Parse("model.path: m\ndata.train.path: t\n")), HasSubstr("output_dir is required"));
  EXPECT_THAT(ErrorOf(Parse("model.path: m\noutput_dir: o\n")), HasSubstr("data.train.path is required"));
  EXPECT_EQ(ErrorOf(Parse(kMinimal, {"model.path="})), "override 'model.path=': must not be empty");
  EXPECT_EQ(ErrorOf(Parse("model.path: m\noutput_dir: ''\ndata.train.path: t\n")),
            "test.yaml:2: output_dir: must not be empty");
  // An empty file, completed by overrides.
  EXPECT_TRUE(Parse("", {"model.path=m", "output_dir=o", "data.train.path=t"}).ok());
  // The validation set is optional.
  EXPECT_TRUE(Parse(kMinimal, {"data.validation.path="}).ok());
}

TEST(Recipe, DuplicateKeysAreRefused) {
  EXPECT_EQ(ErrorOf(Parse(std::string(kMinimal) + "training:\n  epochs: 1\n  epochs: 2\n")),
            "test.yaml:9: duplicate key 'training.epochs' (first set at test.yaml:8)");
  EXPECT_EQ(ErrorOf(Parse(std::string(kMinimal) + "optimizer:\n  lr: 1\noptimizer.lr: 2\n")),
            "test.yaml:9: duplicate key 'optimizer.lr' (first set at test.yaml:8)");
}

TEST(Recipe, OverridesApplyInOrderIntoNestedSections) {
  absl::StatusOr<Recipe> recipe =
      Parse(std::string(kMinimal) + "optimizer:\n  lr: 1e-3\ntraining:\n  batch_size: 0\n",
            {"optimizer.lr=1e-4", "optimizer.lr=5e-5", "data.validation.path=v.jsonl",
             "data.train.messages_field=conversations", "model.activation_checkpointing=true",
             "model.attention=sdpa", "training.batch_size=2",  // fixes the file's invalid 0: ranges are checked after every override
             "model.path='/models/a b: c'", " seed =7"});
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  EXPECT_EQ(recipe->optimizer.lr, 5e-5);
  EXPECT_EQ(recipe->data.validation.path, "v.jsonl");
  EXPECT_EQ(recipe->data.train.messages_field, "conversations");
  EXPECT_TRUE(recipe->model.activation_checkpointing);
  EXPECT_EQ(recipe->model.attention, AttentionBackend::kSdpa);
  EXPECT_EQ(recipe->training.batch_size, 2);
  EXPECT_EQ(recipe->model.path, "/models/a b: c");
  EXPECT_EQ(recipe->seed, 7);
}

TEST(Recipe, MalformedOverrides) {
  EXPECT_EQ(ErrorOf(Parse(kMinimal, {"training.batch_size"})),
            "override 'training.batch_size': expected dotted.key=value, e.g. optimizer.lr=1e-4");
  EXPECT_THAT(ErrorOf(Parse(kMinimal, {"=4"})), HasSubstr("override '=4': expected dotted.key=value"));
  EXPECT_EQ(ErrorOf(Parse(kMinimal, {"training.batch_size=x"})),
            "override 'training.batch_size=x': expected an integer, got 'x'");
  EXPECT_THAT(ErrorOf(Parse(kMinimal, {"optimizer=1"})),
              HasSubstr("override 'optimizer=1': 'optimizer' is a section; override one of its keys (optimizer.lr, "));
  EXPECT_THAT(ErrorOf(Parse(kMinimal, {"model.path=[a"})), HasSubstr("the value is not a YAML scalar"));
  EXPECT_EQ(ErrorOf(Parse(kMinimal, {"model.path=a: b"})), "override 'model.path=a: b': expected a string, got a map");
}

// Every field away from its default, strings that YAML would otherwise read as other types, awkward doubles.
Recipe EveryFieldChanged() {
  Recipe r;
  r.model.path = "/models/with space: and # hash";
  r.model.dtype = "bfloat16";
  r.model.activation_checkpointing = true;
  r.model.attention = AttentionBackend::kSdpa;
  r.lora = {4, 8.5, 0.25, "q_proj,o_proj", true, "adapters/x"};
  r.device = "cuda:3";
  r.loss = LossChoice::kFused;
  r.seed = 42;
  r.output_dir = "null";
  r.data.train = {"~", RecordFormat::kMessages, "m", "r", "c", "p", "a", "s"};
  r.data.validation = {"'quoted' \"twice\"\nand a newline", RecordFormat::kPromptResponse, "1e-4", "true", "[x",
                       "{y", "- z", "é"};
  r.data.chat_template = ChatTemplateKind::kPlain;
  r.data.max_seq_len = 4096;
  r.data.packing = false;
  r.data.shuffle = false;
  r.data.on_bad_line = BadLinePolicy::kSkip;
  r.data.append_eos = true;
  r.data.meta_prompts = "a.txt,b.txt";
  r.data.max_source_len = 300;
  r.data.max_target_len = 200;
  r.objective = ObjectiveKind::kStableAlignment;
  r.stable_alignment = {5, 10.0, 0.5, 0.75};
  r.dpo.beta = 0.25;
  r.training.batch_size = 3;
  r.training.gradient_accumulation_steps = 5;
  r.training.epochs = 7;
  r.training.max_steps = 1000;
  r.training.stop_after_steps = 300;
  r.training.clip_grad_norm = 0.1;
  r.training.on_nonfinite = NonFinitePolicy::kStop;
  r.optimizer.lr = 1.0 / 3.0;
  r.optimizer.beta1 = 0.8999999999999999;
  r.optimizer.beta2 = 0.95;
  r.optimizer.eps = 5e-324;  // the smallest denormal
  r.optimizer.weight_decay = 123456789.125;
  r.scheduler.name = ScheduleKind::kConstant;
  r.scheduler.warmup_steps = 11;
  r.scheduler.min_lr_ratio = 1.0;
  r.eval.every_steps = 13;
  r.eval.max_batches = 17;
  r.checkpoint.every_steps = 19;
  r.checkpoint.keep_last = 23;
  r.resume = "runs/x/checkpoints/step-100";
  r.logging.log_every_steps = 29;
  r.logging.tensorboard = false;
  r.distributed.backend = "gloo";
  r.distributed.bucket_mb = 0.5;
  r.distributed.timeout_s = 31;
  r.simulate.method = SimulationMethod::kSelfAlign;
  r.simulate.questions = "q.txt";
  r.simulate.max_questions = 7;
  r.simulate.prompts = "p";
  r.simulate.judge_model = "judge";
  r.simulate.chat_template = "vicuna";
  r.simulate.max_new_tokens = 9;
  r.simulate.temperature = 0.25;
  r.simulate.top_p = 0.5;
  r.simulate.judge_temperature = 0.125;
  r.simulate.batch_questions = 5;
  r.simulate.max_sequences = 6;
  r.simulate.prefix_cache_blocks = 11;
  r.simulate.sandbox = {.grid = 4, .rounds = 2, .interactees = 3, .personas = "personas.txt",
                        .memory_similarity = 0.5, .self_critic_ratio = 0.25, .realignment_ratio = 0.75};
  r.simulate.matrix = {.min_roles = 2, .max_roles = 5, .plan_steps = 4, .max_incidents = 6, .fallback_roles = "a,b"};
  r.simulate.self_align = {.seed_topics = "s.jsonl", .topics_per_type = 2, .questions_per_topic = 5,
                           .max_rouge_l = 0.5, .principles = "pr.txt", .exemplars = "ex.txt", .sorry_bias = -5.0,
                           .min_answer_chars = 3};
  r.closed_loop.rounds = 3;
  r.closed_loop.eval_tasks = "a.jsonl,b.json";
  return r;
}

TEST(Recipe, RoundTripIsExact) {
  const Recipe recipe = EveryFieldChanged();
  const std::string yaml = RecipeToYaml(recipe);
  absl::StatusOr<Recipe> back = ParseRecipe(yaml, "emitted", {});
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << yaml;
  EXPECT_TRUE(*back == recipe) << yaml;
  EXPECT_EQ(RecipeToYaml(*back), yaml);  // the text is stable too
  EXPECT_EQ(yaml.rfind("# ", 0), 0u) << "starts with a header comment";
  // Sections come in the table's order.
  size_t previous = 0;
  for (const std::string key : {"model:", "device:", "seed:", "output_dir:", "data:", "training:", "optimizer:",
                                "scheduler:", "eval:", "checkpoint:", "resume:", "logging:"}) {
    const size_t at = yaml.find("\n" + key);
    ASSERT_NE(at, std::string::npos) << key << "\n" << yaml;
    EXPECT_GT(at, previous) << key;
    previous = at;
  }
}

TEST(Recipe, DefaultsEmitEveryKey) {
  Recipe recipe;
  recipe.model.path = "m";
  recipe.output_dir = "o";
  recipe.data.train.path = "t";
  const std::string yaml = RecipeToYaml(recipe);
  EXPECT_THAT(yaml, HasSubstr("  lr: 2e-05\n"));
  EXPECT_THAT(yaml, HasSubstr("  clip_grad_norm: 1.0\n"));
  EXPECT_THAT(yaml, HasSubstr("  validation:\n    path: \"\"\n"));
  absl::StatusOr<Recipe> back = ParseRecipe(yaml, "emitted", {});
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == recipe) << yaml;
}

TEST(Recipe, LoadRecipeNamesTheFile) {
  const std::filesystem::path dir = EnvDir("AGORA_SCRATCH") / "recipe_test";
  std::filesystem::create_directories(dir);
  const std::filesystem::path path = dir / "bad.yaml";
  std::ofstream(path) << kMinimal << "training:\n  batch_size: four\n";
  EXPECT_EQ(ErrorOf(LoadRecipe(path, {})),
            path.string() + ":8: training.batch_size: expected an integer, got 'four'");
  absl::StatusOr<Recipe> missing = LoadRecipe(dir / "missing.yaml", {});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("missing.yaml"));
}

}  // namespace
}  // namespace agora
