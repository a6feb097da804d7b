#include "simulate/closed_loop.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "models/eval_scoring.h"
#include "models/serving_model.h"
#include "simulate/simulation.h"
#include "trainer/run_training.h"
#include "trainer/training_checkpoint.h"
#include "util/atomic_file.h"
#include "util/read_file.h"

namespace agora {
namespace {

using Json = nlohmann::ordered_json;
namespace fs = std::filesystem;

// A QLoRA loop simulates and evaluates with the base stored as it trains it: the memory that fits training fits
// serving. (The judge model is frozen and served as it is.)
BaseQuantization ServedQuantization(const Recipe& recipe) {
  return recipe.lora.rank > 0 ? recipe.lora.quantize_base : BaseQuantization::kNone;
}

// What a stage runs with: a model folder and, for LoRA rounds, the adapter on it.
struct ModelState {
  std::string model, adapter;
};

absl::StatusOr<Json> ReadJson(const fs::path& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  Json j = Json::parse(*text, nullptr, false);
  if (j.is_discarded()) return absl::DataLossError(absl::StrCat(path.string(), ": not JSON"));
  return j;
}

// Simulates into `out` with `state` as the policy, unless `out` already holds a finished simulation.
absl::StatusOr<SimulationOutput> Simulate(const Recipe& recipe, const ModelState& state, const fs::path& out,
                                          bool terminal) {
  if (fs::exists(out / "summary.json")) {
    absl::StatusOr<Json> summary = ReadJson(out / "summary.json");
    if (!summary.ok()) return summary.status();
    absl::StatusOr<RecordFormat> format = ParseRecordFormat((*summary)["format"].get<std::string>());
    if (!format.ok()) return format.status();
    std::fprintf(stderr, "simulate: %s is complete, not simulated again\n", out.string().c_str());
    return SimulationOutput{out / (*summary)["train_file"].get<std::string>(), *format,
                            (*summary)["counts"].get<std::map<std::string, int64_t>>(), (*summary)["throughput"]};
  }
  const SimulateRecipe& sim = recipe.simulate;
  absl::StatusOr<ServingModel> policy = LoadServingModel({.model_dir = state.model,
                                                          .adapter_dir = state.adapter,
                                                          .chat_template = sim.chat_template,
                                                          .device = recipe.device,
                                                          .dtype = recipe.model.dtype,
                                                          .quantize_base = ServedQuantization(recipe)});
  if (!policy.ok()) return policy.status();
  auto engine_options = [&](const ServingModel& served) {
    EngineOptions o;
    o.max_sequences = sim.max_sequences;
    o.prefix_cache_blocks = sim.prefix_cache_blocks;
    o.detokenize = Detokenizer(served);
    return o;
  };
  EngineTextGenerator policy_generator(*policy, engine_options(*policy));
  std::optional<ServingModel> judge;
  std::optional<EngineTextGenerator> judge_generator;
  if (!sim.judge_model.empty()) {
    absl::StatusOr<ServingModel> loaded = LoadServingModel({.model_dir = sim.judge_model,
                                                            .chat_template = sim.chat_template,
                                                            .device = recipe.device,
                                                            .dtype = recipe.model.dtype});
    if (!loaded.ok()) return loaded.status();
    judge.emplace(*std::move(loaded));
    judge_generator.emplace(*judge, engine_options(*judge));
  }
  SimulationContext context;
  context.recipe = sim;
  context.seed = static_cast<uint64_t>(recipe.seed);
  context.policy = &policy_generator;
  context.judge = judge_generator ? &*judge_generator : &policy_generator;
  context.prompts = sim.prompts.empty() ? fs::path("simulate/prompts") / SimulationMethodName(sim.method)
                                        : fs::path(sim.prompts);
  context.out = out;
  context.terminal = terminal;
  return RunSimulation(context);
}

// Scores the eval tasks with `state` into `path` (kept when it exists).
absl::StatusOr<Json> Evaluate(const Recipe& recipe, const ModelState& state, const fs::path& path) {
  if (fs::exists(path)) return ReadJson(path);
  absl::StatusOr<ServingModel> served = LoadServingModel(
      {.model_dir = state.model,
       .adapter_dir = state.adapter,
       .device = recipe.device,
       .dtype = recipe.model.dtype,
       .quantize_base = ServedQuantization(recipe)});
  if (!served.ok()) return served.status();
  EngineOptions options;
  options.detokenize = Detokenizer(*served);
  GenerationEngine engine(served->model, options);
  Json record = {{"model", state.model}, {"adapter", state.adapter}, {"tasks", Json::array()}};
  for (absl::string_view file : absl::StrSplit(recipe.closed_loop.eval_tasks, ',', absl::SkipWhitespace())) {
    absl::StatusOr<TaskResult> r = ScoreTaskFile(engine, *served, std::string(file), nullptr);
    if (!r.ok()) return r.status();
    record["tasks"].push_back({{"task", r->task.name}, {"file", r->file}, {"format", r->task.format},
                               {"n", r->task.items.size()},
                               {"metrics", {{"acc", r->acc}, {"acc_norm", r->acc_norm}, {"mc2", r->mc2}}}});
  }
  fs::create_directories(path.parent_path());
  if (absl::Status s = WriteStringAtomically(path, record.dump(2) + "\n"); !s.ok()) return s;
  return record;
}

// Trains round `round` on `data` from `state`; the state it ends in, or nullopt when the run was stopped.
absl::StatusOr<std::optional<ModelState>> Train(const Recipe& recipe, const ModelState& state,
                                                const SimulationOutput& data, const fs::path& dir, bool terminal) {
  const bool lora = recipe.lora.rank > 0;
  auto next = [&](const std::string& checkpoint) {
    return lora ? ModelState{state.model, checkpoint} : ModelState{checkpoint, ""};
  };
  if (fs::exists(dir / "finished.json")) {
    absl::StatusOr<Json> finished = ReadJson(dir / "finished.json");
    if (!finished.ok()) return finished.status();
    return next((*finished)["checkpoint"].get<std::string>());
  }
  Recipe round = recipe;
  round.output_dir = dir.string();
  round.data.train.path = data.train_file.string();
  round.data.train.format = data.format;
  round.resume = "auto";
  if (lora) {
    round.lora.init_from = state.adapter;
  } else {
    round.model.path = state.model;
  }
  absl::StatusOr<LoopEnd> end = RunTraining(round, terminal);
  if (!end.ok()) return end.status();
  if (*end != LoopEnd::kFinished) return std::optional<ModelState>();
  std::optional<fs::path> checkpoint = LatestCheckpoint(dir / "checkpoints");
  if (!checkpoint) return absl::InternalError(absl::StrCat(dir.string(), ": training finished without a checkpoint"));
  if (absl::Status s = WriteStringAtomically(dir / "finished.json",
                                             Json{{"checkpoint", checkpoint->string()}}.dump(2) + "\n");
      !s.ok())
    return s;
  return next(checkpoint->string());
}

// The last training and validation loss of a round's training run (null where it logged none).
Json FinalLosses(const fs::path& train_dir) {
  Json losses = {{"train_loss", nullptr}, {"validation_loss", nullptr}};
  std::ifstream in(train_dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const Json record = Json::parse(line, nullptr, false);
    if (record.is_discarded() || !record.contains("loss")) continue;
    if (record["kind"] == "train") losses["train_loss"] = record["loss"];
    if (record["kind"] == "eval") losses["validation_loss"] = record["loss"];
  }
  return losses;
}

std::string Cell(const Json& value) {
  return value.is_number_float() ? absl::StrFormat("%.4f", value.get<double>()) : value.is_null() ? "" : value.dump();
}

// The table of eval per round, printed and saved as closed_loop.json and closed_loop.md.
absl::Status WriteTable(const fs::path& run, const Json& rounds) {
  std::string md =
      "| round | records simulated | train loss | validation loss | task | acc | acc_norm | mc2 |\n"
      "|---|---|---|---|---|---|---|---|\n";
  for (const Json& r : rounds) {
    const std::string head = absl::StrFormat("| %d | %s | %s | %s |", r["round"].get<int64_t>(), Cell(r["records"]),
                                             Cell(r["losses"]["train_loss"]), Cell(r["losses"]["validation_loss"]));
    const Json& eval = r["eval"];
    if (eval.is_null() || eval["tasks"].empty()) md += head + " | | | |\n";
    if (eval.is_null()) continue;
    for (const Json& t : eval["tasks"])
      md += absl::StrFormat("%s %s | %.4f | %.4f | %.4f |\n", head, t["task"].get<std::string>(),
                            t["metrics"]["acc"].get<double>(), t["metrics"]["acc_norm"].get<double>(),
                            t["metrics"]["mc2"].get<double>());
  }
  std::printf("%s", md.c_str());
  if (absl::Status s = WriteStringAtomically(run / "closed_loop.json", Json{{"rounds", rounds}}.dump(2) + "\n");
      !s.ok())
    return s;
  return WriteStringAtomically(run / "closed_loop.md", md);
}

}  // namespace

absl::StatusOr<LoopOutcome> RunSimulateRecipe(const Recipe& recipe, bool terminal) {
  const fs::path run = recipe.output_dir;
  ModelState state{recipe.model.path, recipe.lora.rank > 0 ? recipe.lora.init_from : ""};
  if (recipe.closed_loop.rounds == 0) {
    absl::StatusOr<SimulationOutput> out = Simulate(recipe, state, run, terminal);
    if (!out.ok()) return out.status();
    std::printf("simulated: %s (%s), summary in %s\n", out->train_file.string().c_str(),
                RecordFormatName(out->format).c_str(), (run / "summary.json").string().c_str());
    return LoopOutcome::kFinished;
  }
  fs::create_directories(run);
  if (absl::Status s = WriteStringAtomically(run / "recipe.yaml", RecipeToYaml(recipe)); !s.ok()) return s;
  Json rounds = Json::array();
  auto evaluate = [&](int64_t k, const Json& records, const Json& losses) -> absl::Status {
    Json eval;
    if (!recipe.closed_loop.eval_tasks.empty()) {
      absl::StatusOr<Json> scored = Evaluate(recipe, state, run / absl::StrCat("round_", k) / "eval.json");
      if (!scored.ok()) return scored.status();
      eval = *std::move(scored);
    }
    rounds.push_back({{"round", k}, {"model", state.model}, {"adapter", state.adapter}, {"records", records},
                      {"losses", losses}, {"eval", eval}});
    return absl::OkStatus();
  };
  if (absl::Status s = evaluate(0, Json(), {{"train_loss", nullptr}, {"validation_loss", nullptr}}); !s.ok()) return s;
  for (int64_t k = 1; k <= recipe.closed_loop.rounds; ++k) {
    const fs::path dir = run / absl::StrCat("round_", k);
    std::fprintf(stderr, "== closed loop round %d/%d: simulate with %s%s ==\n", static_cast<int>(k),
                 static_cast<int>(recipe.closed_loop.rounds), state.model.c_str(),
                 state.adapter.empty() ? "" : (" + " + state.adapter).c_str());
    absl::StatusOr<SimulationOutput> data = Simulate(recipe, state, dir / "data", terminal);
    if (!data.ok()) return data.status();
    if (data->counts["records"] == 0)
      return absl::FailedPreconditionError(absl::StrCat("round ", k, " simulated nothing to train on: every record was ",
                                                        "dropped (counts in ", (dir / "data" / "summary.json").string(),
                                                        ")"));
    std::fprintf(stderr, "== closed loop round %d: train on %s ==\n", static_cast<int>(k),
                 data->train_file.string().c_str());
    absl::StatusOr<std::optional<ModelState>> trained = Train(recipe, state, *data, dir / "train", terminal);
    if (!trained.ok()) return trained.status();
    if (!trained->has_value()) {
      std::fprintf(stderr, "closed loop stopped in round %d's training; run the same command again to resume\n",
                   static_cast<int>(k));
      return LoopOutcome::kStopped;
    }
    state = **trained;
    if (absl::Status s = evaluate(k, data->counts["records"], FinalLosses(dir / "train")); !s.ok()) return s;
  }
  if (absl::Status s = WriteTable(run, rounds); !s.ok()) return s;
  return LoopOutcome::kFinished;
}

}  // namespace agora
