// Recipes: one table of fields (dotted key, member, rule) drives reading YAML, applying overrides, validating and
// writing YAML back, so a new field is one row and cannot be read one way and written another.
#include "trainer/recipe.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <functional>
#include <type_traits>
#include <utility>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "util/status_macros.h"

namespace agora {
namespace {

// --- rules --------------------------------------------------------------------------------------------------------

// What a value must satisfy once every source (file, overrides) has been applied.
struct Rule {
  double min = -std::numeric_limits<double>::infinity();  // numbers
  bool min_exclusive = false;
  double max = std::numeric_limits<double>::infinity();
  bool max_exclusive = false;
  std::vector<std::string> one_of;  // strings; an entry ending in ":N" admits that prefix + a decimal index
  bool required = false;            // strings: must not be empty
};

Rule AtLeast(double min) { return {.min = min}; }
Rule Positive() { return {.min = 0, .min_exclusive = true}; }
Rule UnitInterval() { return {.min = 0, .max = 1}; }
Rule Beta() { return {.min = 0, .max = 1, .max_exclusive = true}; }  // 1 would stop the moment estimate moving
Rule OneOf(std::vector<std::string> choices) { return {.one_of = std::move(choices)}; }
Rule NonEmpty() { return {.required = true}; }

// One key: how a YAML value is read into the recipe, checked once every source is applied, and written back.
struct Field {
  std::string key;  // dotted: "optimizer.lr"
  // An error is a value of the wrong kind, reported at once. A choice that is not one of the key's comes back as a
  // problem instead, reported only if no later source (an override) replaces it; "" when there is none.
  std::function<absl::StatusOr<std::string>(Recipe&, const YAML::Node&)> read;
  std::function<std::string(const Recipe&)> check;  // the value's problem under the key's rule, or ""
  std::function<std::string(const Recipe&)> format;
};

// Every key, in the order RecipeToYaml writes them; defined below, after the value readers the rows use.
const std::vector<Field>& Fields();

const Field* FindField(const std::string& key) {
  for (const Field& field : Fields())
    if (field.key == key) return &field;
  return nullptr;
}

// The names directly under `section` ("" = top level), in table order; empty when `section` is not a section.
std::vector<std::string> Children(const std::string& section) {
  std::vector<std::string> names;
  const std::string prefix = section.empty() ? "" : section + ".";
  for (const Field& field : Fields()) {
    if (field.key.size() <= prefix.size() || field.key.compare(0, prefix.size(), prefix) != 0) continue;
    std::string name = field.key.substr(prefix.size(), field.key.find('.', prefix.size()) - prefix.size());
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(std::move(name));
  }
  return names;
}

// --- unknown keys -----------------------------------------------------------------------------------------------

// Optimal string alignment distance: Levenshtein plus adjacent transpositions ("tempalte").
size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

std::string LastName(const std::string& key) { return key.substr(key.rfind('.') + 1); }

// "unknown key 'optimiser' (did you mean 'optimizer'?)": a known key or section close enough to be a typo, else
// the one key with the same last name in another section ("training.lr" -> "optimizer.lr"), else the choices.
std::string UnknownKey(const std::string& key) {
  std::vector<std::string> known;
  for (const Field& field : Fields()) {
    for (size_t dot = field.key.find('.'); dot != std::string::npos; dot = field.key.find('.', dot + 1))
      known.push_back(field.key.substr(0, dot));
    known.push_back(field.key);
  }
  std::string best;
  size_t best_distance = std::max<size_t>(2, key.size() / 5) + 1;
  for (const std::string& candidate : known) {
    // The distance is at least the difference in length: a long garbage key (a fuzzer's) costs no quadratic work.
    const size_t length_gap = key.size() > candidate.size() ? key.size() - candidate.size() : candidate.size() - key.size();
    if (length_gap >= best_distance) continue;
    if (size_t distance = EditDistance(key, candidate); distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  if (best.empty()) {
    std::vector<std::string> same_name;
    for (const Field& field : Fields())
      if (LastName(field.key) == LastName(key)) same_name.push_back(field.key);
    if (same_name.size() == 1) best = same_name[0];
  }
  if (!best.empty()) return absl::StrCat("unknown key '", key, "' (did you mean '", best, "'?)");
  const size_t dot = key.rfind('.');
  const std::string section = dot == std::string::npos ? "" : key.substr(0, dot);
  return absl::StrCat("unknown key '", key, "' (known keys ", section.empty() ? "at the top level" : "under " + section,
                      ": ", absl::StrJoin(Children(section), ", "), ")");
}

// --- values -----------------------------------------------------------------------------------------------------

// A YAML scalar as the recipe reads it: plain text is typed by its spelling, quoted text is always a string.
struct Scalar {
  std::string text;
  bool quoted = false;
  bool null = false;  // `key:` with nothing after it
};

template <typename T>
std::string KindName() {
  if constexpr (std::is_same_v<T, std::string>) return "a string";
  if constexpr (std::is_same_v<T, int64_t>) return "an integer";
  if constexpr (std::is_same_v<T, double>) return "a number";
  if constexpr (std::is_same_v<T, bool>) return "true or false";
}

std::string Got(const Scalar& s) {
  if (s.null) return "nothing";
  if (s.quoted) return absl::StrCat("the quoted string '", s.text, "' (quoted values are strings)");
  return absl::StrCat("'", s.text, "'");
}

template <typename T>
absl::Status Expected(const Scalar& s, const std::string& hint = "") {
  return absl::InvalidArgumentError(absl::StrCat("expected ", KindName<T>(), ", got ", Got(s), hint));
}

absl::Status ParseScalar(const Scalar& s, std::string& out) {
  out = s.text;  // null reads as "": a required key then says it must not be empty
  return absl::OkStatus();
}

absl::Status ParseScalar(const Scalar& s, bool& out) {
  static const char* const kTrue[] = {"true", "True", "TRUE"};
  static const char* const kFalse[] = {"false", "False", "FALSE"};
  const bool is_true = std::find(std::begin(kTrue), std::end(kTrue), s.text) != std::end(kTrue);
  const bool is_false = std::find(std::begin(kFalse), std::end(kFalse), s.text) != std::end(kFalse);
  if (s.quoted || s.null || !(is_true || is_false))
    return Expected<bool>(s, " (YAML 1.2 booleans: yes/no/on/off are not booleans)");
  out = is_true;
  return absl::OkStatus();
}

// Integers and numbers share this: the whole text must parse, a leading '+' (valid YAML) is allowed.
template <typename T>
absl::Status ParseNumber(const Scalar& s, T& out) {
  std::string_view text = s.text;
  if (text.size() > 1 && text[0] == '+' && text[1] != '-') text.remove_prefix(1);
  if (s.quoted || s.null || text.empty()) return Expected<T>(s);
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range)
    return absl::InvalidArgumentError(absl::StrCat("'", s.text, "' is out of range for ", KindName<T>()));
  if (ec != std::errc() || end != text.data() + text.size()) return Expected<T>(s);
  if constexpr (std::is_same_v<T, double>) {
    if (!std::isfinite(value)) return Expected<T>(s, " (it must be finite)");
  }
  out = value;
  return absl::OkStatus();
}

absl::Status ParseScalar(const Scalar& s, int64_t& out) { return ParseNumber(s, out); }
absl::Status ParseScalar(const Scalar& s, double& out) { return ParseNumber(s, out); }

// Reads a YAML node into `out`, refusing maps and lists where a scalar belongs.
template <typename T>
absl::Status ParseNode(const YAML::Node& node, T& out) {
  if (node.IsMap()) return absl::InvalidArgumentError(absl::StrCat("expected ", KindName<T>(), ", got a map"));
  if (node.IsSequence()) return absl::InvalidArgumentError(absl::StrCat("expected ", KindName<T>(), ", got a list"));
  Scalar s;
  s.null = node.IsNull();
  if (!s.null) {
    s.text = node.Scalar();
    s.quoted = node.Tag() == "!";  // yaml-cpp's non-specific tag for quoted scalars; plain ones get "?"
  }
  return ParseScalar(s, out);
}

// Shortest text that reads back to exactly `v`.
std::string Shortest(double v) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
  return std::string(buffer, end);
}

std::string Format(const std::string& v) { return v; }
std::string Format(int64_t v) { return std::to_string(v); }
std::string Format(bool v) { return v ? "true" : "false"; }
std::string Format(double v) {
  std::string text = Shortest(v);
  if (text.find_first_of(".e") == std::string::npos) text += ".0";  // 1.0, not 1: the key is a number
  return text;
}

// --- validation -------------------------------------------------------------------------------------------------

// The problem with `value` under `rule`, or "" when there is none.
std::string Check(const Rule& rule, const std::string& value) {
  if (rule.required && value.empty()) return "must not be empty";
  if (rule.one_of.empty()) return "";
  for (const std::string& choice : rule.one_of) {
    if (choice == value) return "";
    if (choice.ends_with(":N")) {
      const std::string prefix = choice.substr(0, choice.size() - 1);
      if (value.size() > prefix.size() && value.starts_with(prefix) &&
          std::all_of(value.begin() + prefix.size(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return "";
    }
  }
  return absl::StrCat("'", value, "' is not one of ", absl::StrJoin(rule.one_of, "|"));
}

std::string Check(const Rule&, bool) { return ""; }

template <typename T>
std::string Check(const Rule& rule, T value) {
  const double v = static_cast<double>(value);
  const bool low = rule.min_exclusive ? v <= rule.min : v < rule.min;
  const bool high = rule.max_exclusive ? v >= rule.max : v > rule.max;
  if (!low && !high) return "";
  std::string bound;
  if (std::isfinite(rule.min) && std::isfinite(rule.max)) {
    bound = absl::StrCat("in ", rule.min_exclusive ? "(" : "[", Shortest(rule.min), ", ", Shortest(rule.max),
                         rule.max_exclusive ? ")" : "]");
  } else if (std::isfinite(rule.min)) {
    bound = absl::StrCat(rule.min_exclusive ? "> " : ">= ", Shortest(rule.min));
  } else {
    bound = absl::StrCat(rule.max_exclusive ? "< " : "<= ", Shortest(rule.max));
  }
  return absl::StrCat("must be ", bound, ", got ", Format(value));
}

// --- the table ----------------------------------------------------------------------------------------------

// The member a key names, reached through the recipe's sections: Member(recipe, &Recipe::optimizer,
// &OptimizerRecipe::lr) is recipe.optimizer.lr (const when the recipe is).
template <typename RecipeT, typename... Path>
auto& Member(RecipeT& recipe, Path... path) {
  return (recipe .* ... .* path);
}

// A string, integer, number or boolean key.
template <typename... Path>
Field Plain(std::string key, Rule rule, Path... path) {
  return {std::move(key),
          [=](Recipe& r, const YAML::Node& node) -> absl::StatusOr<std::string> {
            AGORA_RETURN_IF_ERROR(ParseNode(node, Member(r, path...)));
            return std::string();
          },
          [=](const Recipe& r) { return Check(rule, Member(r, path...)); },
          [=](const Recipe& r) { return Format(Member(r, path...)); }};
}

// A key whose value is one of an enum's `choices`, spelled as `name` spells them.
template <typename E, typename... Path>
Field Choice(std::string key, std::vector<E> choices, std::string (*name)(E), Path... path) {
  return {std::move(key),
          [=](Recipe& r, const YAML::Node& node) -> absl::StatusOr<std::string> {
            std::string text;
            AGORA_RETURN_IF_ERROR(ParseNode(node, text));
            std::vector<std::string> names;
            for (E choice : choices) {
              if (name(choice) == text) {
                Member(r, path...) = choice;
                return std::string();
              }
              names.push_back(name(choice));
            }
            return absl::StrCat("'", text, "' is not one of ", absl::StrJoin(names, "|"));
          },
          [](const Recipe&) { return std::string(); },
          [=](const Recipe& r) { return name(Member(r, path...)); }};
}

// data.train.* and data.validation.* share their keys; only the path rule differs (validation is optional).
void AddDatasetFields(const std::string& prefix, DatasetRecipe DataRecipe::*dataset, Rule path_rule,
                      std::vector<Field>& fields) {
  const std::pair<const char*, std::string DatasetRecipe::*> kNames[] = {
      {"messages_field", &DatasetRecipe::messages_field}, {"role_field", &DatasetRecipe::role_field},
      {"content_field", &DatasetRecipe::content_field},   {"prompt_field", &DatasetRecipe::prompt_field},
      {"response_field", &DatasetRecipe::response_field}, {"system_field", &DatasetRecipe::system_field}};
  fields.push_back(Plain(prefix + ".path", std::move(path_rule), &Recipe::data, dataset, &DatasetRecipe::path));
  fields.push_back(Choice(prefix + ".format",
                          {RecordFormat::kAuto, RecordFormat::kMessages, RecordFormat::kPromptResponse,
                           RecordFormat::kShareGpt, RecordFormat::kDromedary, RecordFormat::kSandboxGroups,
                           RecordFormat::kPreference},
                          RecordFormatName, &Recipe::data, dataset, &DatasetRecipe::format));
  for (const auto& [name, member] : kNames)
    fields.push_back(Plain(prefix + "." + name, NonEmpty(), &Recipe::data, dataset, member));
}

// Every key, in the order RecipeToYaml writes them (keys of one section stay together).
const std::vector<Field>& Fields() {
  using R = Recipe;
  static const std::vector<Field>* const fields = [] {
    auto* f = new std::vector<Field>{
        Plain("model.path", NonEmpty(), &R::model, &ModelRecipe::path),
        Plain("model.dtype", OneOf({"auto", "float32", "bfloat16"}), &R::model, &ModelRecipe::dtype),
        Plain("model.activation_checkpointing", {}, &R::model, &ModelRecipe::activation_checkpointing),
        Choice("model.attention", {AttentionBackend::kAgora, AttentionBackend::kSdpa}, AttentionBackendName,
               &R::model, &ModelRecipe::attention),
        Choice("model.on_nonfinite_weights", {NonfiniteWeights::kRefuse, NonfiniteWeights::kWarn},
               NonfiniteWeightsName, &R::model, &ModelRecipe::on_nonfinite_weights),
        Plain("lora.rank", AtLeast(0), &R::lora, &LoraRecipe::rank),
        Choice("lora.quantize_base", {BaseQuantization::kNone, BaseQuantization::kNf4, BaseQuantization::kInt8},
               BaseQuantizationName, &R::lora, &LoraRecipe::quantize_base),
        Plain("lora.alpha", Positive(), &R::lora, &LoraRecipe::alpha),
        Plain("lora.dropout", {.min = 0, .max = 1, .max_exclusive = true}, &R::lora, &LoraRecipe::dropout),
        Plain("lora.targets", NonEmpty(), &R::lora, &LoraRecipe::targets),
        Plain("lora.use_rslora", {}, &R::lora, &LoraRecipe::use_rslora),
        Plain("lora.init_from", {}, &R::lora, &LoraRecipe::init_from),
        Plain("device", OneOf({"auto", "cpu", "cuda", "cuda:N"}), &R::device),
        Choice("loss", {LossChoice::kAuto, LossChoice::kFused, LossChoice::kTorch}, LossChoiceName, &R::loss),
        Plain("seed", AtLeast(0), &R::seed),
        Plain("output_dir", NonEmpty(), &R::output_dir),
    };
    AddDatasetFields("data.train", &DataRecipe::train, NonEmpty(), *f);
    AddDatasetFields("data.validation", &DataRecipe::validation, {}, *f);
    f->insert(f->end(), {
        Choice("data.template",
               {ChatTemplateKind::kLlama2, ChatTemplateKind::kLlama3, ChatTemplateKind::kPlain,
                ChatTemplateKind::kVicuna},
               ChatTemplateName, &R::data, &DataRecipe::chat_template),
        Plain("data.max_seq_len", AtLeast(2), &R::data, &DataRecipe::max_seq_len),  // one input, one target token
        Plain("data.append_eos", {}, &R::data, &DataRecipe::append_eos),
        Plain("data.meta_prompts", {}, &R::data, &DataRecipe::meta_prompts),
        Plain("data.max_source_len", AtLeast(2), &R::data, &DataRecipe::max_source_len),
        Plain("data.max_target_len", AtLeast(1), &R::data, &DataRecipe::max_target_len),
        Plain("data.packing", {}, &R::data, &DataRecipe::packing),
        Plain("data.shuffle", {}, &R::data, &DataRecipe::shuffle),
        Choice("data.on_bad_line", {BadLinePolicy::kError, BadLinePolicy::kSkip}, BadLinePolicyName, &R::data,
               &DataRecipe::on_bad_line),
        Choice("objective", {ObjectiveKind::kSft, ObjectiveKind::kStableAlignment, ObjectiveKind::kDpo},
               ObjectiveKindName, &R::objective),
        Plain("stable_alignment.responses_per_query", AtLeast(1), &R::stable_alignment,
              &StableAlignmentRecipe::responses_per_query),
        Plain("stable_alignment.rating_scale", Positive(), &R::stable_alignment, &StableAlignmentRecipe::rating_scale),
        Plain("stable_alignment.margin", AtLeast(0), &R::stable_alignment, &StableAlignmentRecipe::margin),
        Plain("stable_alignment.ratio", AtLeast(0), &R::stable_alignment, &StableAlignmentRecipe::ratio),
        Plain("dpo.beta", Positive(), &R::dpo, &DpoRecipe::beta),
        Plain("training.batch_size", AtLeast(1), &R::training, &TrainingRecipe::batch_size),
        Plain("training.gradient_accumulation_steps", AtLeast(1), &R::training,
              &TrainingRecipe::gradient_accumulation_steps),
        Plain("training.epochs", AtLeast(1), &R::training, &TrainingRecipe::epochs),
        Plain("training.max_steps", AtLeast(0), &R::training, &TrainingRecipe::max_steps),
        Plain("training.stop_after_steps", AtLeast(0), &R::training, &TrainingRecipe::stop_after_steps),
        Plain("training.clip_grad_norm", AtLeast(0), &R::training, &TrainingRecipe::clip_grad_norm),
        Choice("training.on_nonfinite", {NonFinitePolicy::kSkip, NonFinitePolicy::kStop}, NonFinitePolicyName,
               &R::training, &TrainingRecipe::on_nonfinite),
        Plain("optimizer.lr", Positive(), &R::optimizer, &OptimizerRecipe::lr),
        Plain("optimizer.beta1", Beta(), &R::optimizer, &OptimizerRecipe::beta1),
        Plain("optimizer.beta2", Beta(), &R::optimizer, &OptimizerRecipe::beta2),
        Plain("optimizer.eps", Positive(), &R::optimizer, &OptimizerRecipe::eps),
        Plain("optimizer.weight_decay", AtLeast(0), &R::optimizer, &OptimizerRecipe::weight_decay),
        Choice("scheduler.name", {ScheduleKind::kCosine, ScheduleKind::kConstant}, ScheduleKindName, &R::scheduler,
               &SchedulerRecipe::name),
        Plain("scheduler.warmup_steps", AtLeast(0), &R::scheduler, &SchedulerRecipe::warmup_steps),
        Plain("scheduler.warmup_ratio", UnitInterval(), &R::scheduler, &SchedulerRecipe::warmup_ratio),
        Plain("scheduler.min_lr_ratio", UnitInterval(), &R::scheduler, &SchedulerRecipe::min_lr_ratio),
        Plain("eval.every_steps", AtLeast(0), &R::eval, &EvalRecipe::every_steps),
        Plain("eval.max_batches", AtLeast(0), &R::eval, &EvalRecipe::max_batches),
        Plain("checkpoint.every_steps", AtLeast(0), &R::checkpoint, &CheckpointRecipe::every_steps),
        Plain("checkpoint.keep_last", AtLeast(1), &R::checkpoint, &CheckpointRecipe::keep_last),
        Plain("resume", NonEmpty(), &R::resume),  // auto | none | a checkpoint folder
        Plain("logging.log_every_steps", AtLeast(1), &R::logging, &LoggingRecipe::log_every_steps),
        Plain("logging.tensorboard", {}, &R::logging, &LoggingRecipe::tensorboard),
        Plain("distributed.backend", OneOf({"auto", "nccl", "gloo"}), &R::distributed, &DistributedRecipe::backend),
        Plain("distributed.bucket_mb", Positive(), &R::distributed, &DistributedRecipe::bucket_mb),
        Plain("distributed.timeout_s", AtLeast(1), &R::distributed, &DistributedRecipe::timeout_s),
        Choice("distributed.sharding",
               {ShardingLevel::kNone, ShardingLevel::kOptimizer, ShardingLevel::kGradients, ShardingLevel::kParameters},
               ShardingLevelName, &R::distributed, &DistributedRecipe::sharding),
        Choice("simulate.method", {SimulationMethod::kSandbox, SimulationMethod::kMatrix, SimulationMethod::kSelfAlign},
               SimulationMethodName, &R::simulate, &SimulateRecipe::method),
        Plain("simulate.questions", {}, &R::simulate, &SimulateRecipe::questions),
        Plain("simulate.max_questions", AtLeast(0), &R::simulate, &SimulateRecipe::max_questions),
        Plain("simulate.prompts", {}, &R::simulate, &SimulateRecipe::prompts),
        Plain("simulate.judge_model", {}, &R::simulate, &SimulateRecipe::judge_model),
        Plain("simulate.chat_template", OneOf({"", "llama2", "llama3", "plain", "vicuna"}), &R::simulate,
              &SimulateRecipe::chat_template),
        Plain("simulate.max_new_tokens", AtLeast(1), &R::simulate, &SimulateRecipe::max_new_tokens),
        Plain("simulate.temperature", AtLeast(0), &R::simulate, &SimulateRecipe::temperature),
        Plain("simulate.top_p", {.min = 0, .min_exclusive = true, .max = 1}, &R::simulate, &SimulateRecipe::top_p),
        Plain("simulate.judge_temperature", AtLeast(0), &R::simulate, &SimulateRecipe::judge_temperature),
        Plain("simulate.batch_questions", AtLeast(1), &R::simulate, &SimulateRecipe::batch_questions),
        Plain("simulate.max_sequences", AtLeast(1), &R::simulate, &SimulateRecipe::max_sequences),
        Plain("simulate.prefix_cache_blocks", AtLeast(0), &R::simulate, &SimulateRecipe::prefix_cache_blocks),
        Plain("simulate.sandbox.grid", AtLeast(2), &R::simulate, &SimulateRecipe::sandbox, &SandboxRecipe::grid),
        Plain("simulate.sandbox.rounds", AtLeast(0), &R::simulate, &SimulateRecipe::sandbox, &SandboxRecipe::rounds),
        Plain("simulate.sandbox.interactees", AtLeast(1), &R::simulate, &SimulateRecipe::sandbox,
              &SandboxRecipe::interactees),
        Plain("simulate.sandbox.personas", {}, &R::simulate, &SimulateRecipe::sandbox, &SandboxRecipe::personas),
        Plain("simulate.sandbox.memory_similarity", UnitInterval(), &R::simulate, &SimulateRecipe::sandbox,
              &SandboxRecipe::memory_similarity),
        Plain("simulate.sandbox.self_critic_ratio", UnitInterval(), &R::simulate, &SimulateRecipe::sandbox,
              &SandboxRecipe::self_critic_ratio),
        Plain("simulate.sandbox.realignment_ratio", UnitInterval(), &R::simulate, &SimulateRecipe::sandbox,
              &SandboxRecipe::realignment_ratio),
        Plain("simulate.matrix.min_roles", AtLeast(1), &R::simulate, &SimulateRecipe::matrix, &MatrixRecipe::min_roles),
        Plain("simulate.matrix.max_roles", AtLeast(1), &R::simulate, &SimulateRecipe::matrix, &MatrixRecipe::max_roles),
        Plain("simulate.matrix.plan_steps", AtLeast(1), &R::simulate, &SimulateRecipe::matrix,
              &MatrixRecipe::plan_steps),
        Plain("simulate.matrix.max_incidents", AtLeast(1), &R::simulate, &SimulateRecipe::matrix,
              &MatrixRecipe::max_incidents),
        Plain("simulate.matrix.fallback_roles", NonEmpty(), &R::simulate, &SimulateRecipe::matrix,
              &MatrixRecipe::fallback_roles),
        Plain("simulate.self_align.seed_topics", {}, &R::simulate, &SimulateRecipe::self_align,
              &SelfAlignRecipe::seed_topics),
        Plain("simulate.self_align.topics_per_type", AtLeast(0), &R::simulate, &SimulateRecipe::self_align,
              &SelfAlignRecipe::topics_per_type),
        Plain("simulate.self_align.questions_per_topic", AtLeast(0), &R::simulate, &SimulateRecipe::self_align,
              &SelfAlignRecipe::questions_per_topic),
        Plain("simulate.self_align.max_rouge_l", UnitInterval(), &R::simulate, &SimulateRecipe::self_align,
              &SelfAlignRecipe::max_rouge_l),
        Plain("simulate.self_align.principles", {}, &R::simulate, &SimulateRecipe::self_align,
              &SelfAlignRecipe::principles),
        Plain("simulate.self_align.exemplars", {}, &R::simulate, &SimulateRecipe::self_align,
              &SelfAlignRecipe::exemplars),
        Plain("simulate.self_align.sorry_bias", {}, &R::simulate, &SimulateRecipe::self_align,
              &SelfAlignRecipe::sorry_bias),
        Plain("simulate.self_align.min_answer_chars", AtLeast(0), &R::simulate, &SimulateRecipe::self_align,
              &SelfAlignRecipe::min_answer_chars),
        Plain("closed_loop.rounds", AtLeast(0), &R::closed_loop, &ClosedLoopRecipe::rounds),
        Plain("closed_loop.eval_tasks", {}, &R::closed_loop, &ClosedLoopRecipe::eval_tasks),
    });
    return f;
  }();
  return *fields;
}

// --- resolving ----------------------------------------------------------------------------------------------------

// The length of the UTF-8 sequence starting at text[i] (1 for ASCII), or 0 if it is not well-formed (RFC 3629:
// no overlong forms, no surrogates, nothing past U+10FFFF).
size_t Utf8SequenceLength(const std::string& text, size_t i) {
  const auto at = [&](size_t k) { return k < text.size() ? static_cast<unsigned char>(text[k]) : 0; };
  const unsigned char lead = at(i);
  if (lead < 0x80) return 1;
  size_t length = 0;
  unsigned char low = 0x80, high = 0xbf;  // the allowed range of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) length = 2;
  else if (lead >= 0xe0 && lead <= 0xef) length = 3, low = lead == 0xe0 ? 0xa0 : 0x80, high = lead == 0xed ? 0x9f : 0xbf;
  else if (lead >= 0xf0 && lead <= 0xf4) length = 4, low = lead == 0xf0 ? 0x90 : 0x80, high = lead == 0xf4 ? 0x8f : 0xbf;
  else return 0;
  if (at(i + 1) < low || at(i + 1) > high) return 0;
  for (size_t k = 2; k < length; ++k)
    if (at(i + k) < 0x80 || at(i + k) > 0xbf) return 0;
  return length;
}

// A YAML stream is UTF-8 text without control characters but tab and line breaks (the spec's c-printable);
// yaml-cpp 0.7 reads both kinds into strings it then cannot write back the same (found by fuzz/recipe_fuzzer's
// round trip), so they are refused.
absl::Status CheckPrintable(const std::string& text, const std::string& where) {
  int64_t line = 1, column = 1;
  for (size_t i = 0; i < text.size(); ++column) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if ((byte < 0x20 && byte != '\t' && byte != '\n' && byte != '\r') || byte == 0x7f)
      return absl::InvalidArgumentError(absl::StrFormat("%s:%d:%d: control character 0x%02x; YAML allows only "
                                                        "tabs and line breaks", where, line, column, byte));
    const size_t length = Utf8SequenceLength(text, i);
    if (length == 0)
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d:%d: byte 0x%02x is not UTF-8 text", where, line, column, byte));
    if (byte == '\n') {
      ++line;
      column = 0;
    }
    i += length;
  }
  return absl::OkStatus();
}

// The YAML documents of a stream, counted up to two. Not YAML::LoadAll: yaml-cpp 0.7 (Debian 12's) loops there
// forever on some invalid streams, a lone "," among them, adding a null document each turn until memory runs out
// (jbeder/yaml-cpp#1040, fixed upstream in 0.8 by #1319; found by fuzz/recipe_fuzzer). Each document is parsed
// once, by a handler that keeps nothing.
int CountDocuments(const std::string& text) {
  struct Discard : YAML::EventHandler {
    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
  } discard;
  std::istringstream in(text);
  YAML::Parser parser(in);
  int documents = 0;
  while (documents < 2 && parser.HandleNextDocument(discard)) ++documents;
  return documents;
}

// Builds one Recipe from defaults, then the file, then the overrides, remembering where each value came from.
class Resolver {
 public:
  explicit Resolver(std::string source)
      : source_(std::move(source)), origin_(Fields().size()), problems_(Fields().size()) {}

  absl::Status ReadYaml(const std::string& text) {
    AGORA_RETURN_IF_ERROR(CheckPrintable(text, source_));
    YAML::Node document;
    try {
      if (CountDocuments(text) > 1)
        return absl::InvalidArgumentError(absl::StrCat(source_, ": holds more than one YAML document; a recipe is one"));
      document = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(source_, ":", e.mark.line + 1, ":", e.mark.column + 1, ": invalid YAML: ", e.msg));
    }
    if (document.IsNull()) return absl::OkStatus();
    if (!document.IsMap())
      return absl::InvalidArgumentError(absl::StrCat(source_, ":", document.Mark().line + 1,
                                                     ": a recipe is a map of sections and keys"));
    return ReadMap(document, "");
  }

  absl::Status ApplyOverride(const std::string& text) {
    const std::string where = absl::StrCat("override '", text, "'");
    const size_t eq = text.find('=');
    const std::string key = eq == std::string::npos ? "" : Trim(text.substr(0, eq));
    if (key.empty())
      return absl::InvalidArgumentError(absl::StrCat(where, ": expected dotted.key=value, e.g. optimizer.lr=1e-4"));
    const Field* field = FindField(key);
    if (field == nullptr) {
      if (std::vector<std::string> children = Children(key); !children.empty())
        return absl::InvalidArgumentError(absl::StrCat(where, ": '", key, "' is a section; override one of its keys (",
                                                       key, ".", absl::StrJoin(children, ", " + key + "."), ")"));
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", UnknownKey(key)));
    }
    AGORA_RETURN_IF_ERROR(CheckPrintable(text, where));
    YAML::Node value;
    try {
      value = YAML::Load(text.substr(eq + 1));
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": the value is not a YAML scalar (", e.msg, ")"));
    }
    return Assign(*field, value, where);
  }

  absl::StatusOr<Recipe> Finish() const {
    for (size_t i = 0; i < Fields().size(); ++i) {
      const Field& field = Fields()[i];
      const std::string problem = problems_[i].empty() ? field.check(recipe_) : problems_[i];
      if (problem.empty()) continue;
      if (origin_[i].empty())  // only a required key can fail at its default
        return absl::InvalidArgumentError(absl::StrCat(field.key, " is required: set it in ", source_,
                                                       " or override it with ", field.key, "=..."));
      return absl::InvalidArgumentError(absl::StrCat(origin_[i], ": ", problem));
    }
    return recipe_;
  }

 private:
  static std::string Trim(const std::string& s) {
    const size_t begin = s.find_first_not_of(" \t");
    return begin == std::string::npos ? "" : s.substr(begin, s.find_last_not_of(" \t") + 1 - begin);
  }

  absl::Status ReadMap(const YAML::Node& map, const std::string& prefix) {
    for (auto it = map.begin(); it != map.end(); ++it) {
      const int line = it->first.Mark().line + 1;  // errors point at the key: a null value's mark is past it
      const std::string at = absl::StrCat(source_, ":", line);
      if (!it->first.IsScalar())
        return absl::InvalidArgumentError(absl::StrCat(at, ": a key must be a name, got a map or a list"));
      const std::string key = prefix.empty() ? it->first.Scalar() : prefix + "." + it->first.Scalar();
      if (auto [first, inserted] = lines_.emplace(key, line); !inserted)
        return absl::InvalidArgumentError(
            absl::StrCat(at, ": duplicate key '", key, "' (first set at ", source_, ":", first->second, ")"));
      // A copy (a node is a handle): it->second lives in a proxy that dies with this statement, so a reference
      // to it dangles (found by ASan in the recipe fuzzer).
      const YAML::Node value = it->second;
      if (const Field* field = FindField(key)) {
        AGORA_RETURN_IF_ERROR(Assign(*field, value, absl::StrCat(at, ": ", key)));
      } else if (std::vector<std::string> children = Children(key); !children.empty()) {
        if (value.IsMap()) {
          AGORA_RETURN_IF_ERROR(ReadMap(value, key));
        } else if (!value.IsNull()) {  // `eval:` with every key commented out is an empty section
          return absl::InvalidArgumentError(absl::StrCat(at, ": ", key, ": expected a map of ",
                                                         absl::StrJoin(children, ", "), "; got ",
                                                         value.IsSequence() ? "a list" : "'" + value.Scalar() + "'"));
        }
      } else {
        return absl::InvalidArgumentError(absl::StrCat(at, ": ", UnknownKey(key)));
      }
    }
    return absl::OkStatus();
  }

  // `where` names the value's place in messages: "file:line: key" or "override 'key=value'".
  absl::Status Assign(const Field& field, const YAML::Node& value, const std::string& where) {
    absl::StatusOr<std::string> problem = field.read(recipe_, value);
    if (!problem.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", problem.status().message()));
    const size_t index = &field - Fields().data();
    origin_[index] = where;
    problems_[index] = *std::move(problem);
    return absl::OkStatus();
  }

  std::string source_;
  Recipe recipe_;
  std::vector<std::string> origin_;   // per field, where its value came from; "" = the default
  std::vector<std::string> problems_;  // per field, a choice its last source got wrong; "" = none
  std::map<std::string, int> lines_;  // keys read from the file and their lines, to refuse duplicates
};

}  // namespace

std::string LossChoiceName(LossChoice choice) {
  switch (choice) {
    case LossChoice::kAuto: return "auto";
    case LossChoice::kFused: return "fused";
    case LossChoice::kTorch: return "torch";
  }
  return "?";
}

std::string ObjectiveKindName(ObjectiveKind kind) {
  switch (kind) {
    case ObjectiveKind::kSft: return "sft";
    case ObjectiveKind::kStableAlignment: return "stable_alignment";
    case ObjectiveKind::kDpo: return "dpo";
  }
  return "?";
}

absl::StatusOr<Recipe> ParseRecipe(const std::string& yaml_text, const std::string& source_name,
                                   const std::vector<std::string>& overrides) {
  Resolver resolver(source_name);
  AGORA_RETURN_IF_ERROR(resolver.ReadYaml(yaml_text));
  for (const std::string& override_text : overrides) AGORA_RETURN_IF_ERROR(resolver.ApplyOverride(override_text));
  return resolver.Finish();
}

absl::StatusOr<Recipe> LoadRecipe(const std::filesystem::path& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    const std::string message = absl::StrCat("cannot read recipe ", path.string(), ": ", std::strerror(error));
    return error == ENOENT ? absl::NotFoundError(message) : absl::InvalidArgumentError(message);
  }
  std::ostringstream text;
  text << in.rdbuf();
  return ParseRecipe(text.str(), path.string(), overrides);
}

std::vector<std::pair<std::string, std::string>> RecipeValues(const Recipe& recipe) {
  std::vector<std::pair<std::string, std::string>> values;
  for (const Field& field : Fields()) values.emplace_back(field.key, field.format(recipe));
  return values;
}

std::string RecipeToYaml(const Recipe& recipe) {
  // Emitted key by key in Fields() order, opening and closing sections as the dotted keys change (the keys of a
  // section are contiguous there), so the file reads in the same order as the shipped recipes.
  YAML::Emitter emitter;
  emitter << YAML::BeginMap;
  std::vector<std::string> open;  // the sections currently open, outermost first
  for (const Field& field : Fields()) {
    std::vector<std::string> names = absl::StrSplit(field.key, '.');
    const size_t depth = names.size() - 1;
    size_t common = 0;
    while (common < open.size() && common < depth && open[common] == names[common]) ++common;
    for (; open.size() > common; open.pop_back()) emitter << YAML::EndMap;
    for (; open.size() < depth; open.push_back(names[open.size()]))
      emitter << YAML::Key << names[open.size()] << YAML::Value << YAML::BeginMap;
    emitter << YAML::Key << names.back() << YAML::Value
            << field.format(recipe);
  }
  for (; !open.empty(); open.pop_back()) emitter << YAML::EndMap;
  emitter << YAML::EndMap;
  // A blank line before each top-level section, for the reader; YAML ignores it.
  std::string out =
      "# Agora training recipe, fully resolved: every key with the value the run used, defaults included.\n"
      "# Running a recipe from this file repeats the run.\n";
  for (absl::string_view line : absl::StrSplit(emitter.c_str(), '\n')) {
    if (line.empty()) continue;
    if (line[0] != ' ' && line.back() == ':') out += "\n";
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string SimulationMethodName(SimulationMethod method) {
  switch (method) {
    case SimulationMethod::kSandbox: return "sandbox";
    case SimulationMethod::kMatrix: return "matrix";
    case SimulationMethod::kSelfAlign: return "self_align";
  }
  return "?";
}

}  // namespace agora
