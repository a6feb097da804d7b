#include "data/eval_tasks.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace agora {
namespace {

using Json = nlohmann::ordered_json;  // answers keep the file's order

// Checks a choice set and prefixes each answer with the space that separates it from the prompt.
absl::Status Finish(ChoiceSet& set) {
  if (set.choices.size() < 2) return absl::InvalidArgumentError("needs at least two choices");
  std::set<std::string> seen;
  for (std::string& c : set.choices) {
    if (!seen.insert(c).second) return absl::InvalidArgumentError(absl::StrCat("choice '", c, "' is given twice"));
    c = " " + c;
  }
  if (*std::max_element(set.scores.begin(), set.scores.end()) <= 0)
    return absl::InvalidArgumentError("no choice is marked right (score > 0)");
  return absl::OkStatus();
}

// {answer: score} in file order.
absl::StatusOr<ChoiceSet> ScoredAnswers(const Json& targets, const char* field) {
  if (!targets.is_object()) return absl::InvalidArgumentError(absl::StrCat(field, ": expected {answer: score}"));
  ChoiceSet set;
  for (const auto& [answer, score] : targets.items()) {
    if (!score.is_number()) return absl::InvalidArgumentError(absl::StrCat(field, ": the score of '", answer, "'"));
    set.choices.push_back(answer);
    set.scores.push_back(score.get<double>());
  }
  if (absl::Status s = Finish(set); !s.ok()) return absl::InvalidArgumentError(absl::StrCat(field, ": ", s.message()));
  return set;
}

absl::StatusOr<EvalItem> TruthfulQaItem(const Json& j) {
  if (!j.is_object() || !j.contains("question") || !j["question"].is_string())
    return absl::InvalidArgumentError("expected {question, mc1_targets, mc2_targets}");
  EvalItem item;
  item.prompt = absl::StrCat("Q: ", j["question"].get<std::string>(), "\nA:");
  absl::StatusOr<ChoiceSet> mc1 = ScoredAnswers(j.value("mc1_targets", Json()), "mc1_targets");
  if (!mc1.ok()) return mc1.status();
  item.choices = *std::move(mc1);
  if (j.contains("mc2_targets")) {
    absl::StatusOr<ChoiceSet> mc2 = ScoredAnswers(j["mc2_targets"], "mc2_targets");
    if (!mc2.ok()) return mc2.status();
    item.mc2 = *std::move(mc2);
  }
  return item;
}

absl::StatusOr<EvalItem> BigBenchItem(const Json& j) {
  if (!j.is_object() || !j.contains("input") || !j["input"].is_string())
    return absl::InvalidArgumentError("expected {input, target_scores}");
  EvalItem item;
  item.prompt = j["input"].get<std::string>();
  absl::StatusOr<ChoiceSet> set = ScoredAnswers(j.value("target_scores", Json()), "target_scores");
  if (!set.ok()) return set.status();
  item.choices = *std::move(set);
  return item;
}

absl::StatusOr<EvalItem> PlainItem(const Json& j) {
  if (!j.is_object() || !j.contains("question") || !j["question"].is_string() || !j.contains("choices") ||
      !j["choices"].is_array() || !j.contains("answer"))
    return absl::InvalidArgumentError("expected {question, choices: [...], answer}");
  EvalItem item;
  item.prompt = absl::StrCat("Question: ", j["question"].get<std::string>(), "\nAnswer:");
  for (const Json& c : j["choices"]) {
    if (!c.is_string()) return absl::InvalidArgumentError("choices: expected strings");
    item.choices.choices.push_back(c.get<std::string>());
  }
  const size_t count = item.choices.choices.size();
  item.choices.scores.assign(count, 0.0);
  const Json& answer = j["answer"];
  if (answer.is_number_integer()) {
    const int64_t index = answer.get<int64_t>();
    if (index < 0 || index >= static_cast<int64_t>(count))
      return absl::InvalidArgumentError(absl::StrCat("answer: index ", index, " is outside the ", count, " choices"));
    item.choices.scores[index] = 1.0;
  } else if (answer.is_string()) {
    const auto it = std::find(item.choices.choices.begin(), item.choices.choices.end(), answer.get<std::string>());
    if (it == item.choices.choices.end())
      return absl::InvalidArgumentError(absl::StrCat("answer: '", answer.get<std::string>(), "' is not a choice"));
    item.choices.scores[it - item.choices.choices.begin()] = 1.0;
  } else {
    return absl::InvalidArgumentError("answer: expected a choice's index or text");
  }
  if (absl::Status s = Finish(item.choices); !s.ok()) return s;
  return item;
}

}  // namespace

absl::StatusOr<EvalTask> ReadEvalTask(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot open"));
  EvalTask task;
  task.name = path.stem().string();
  auto bad = [&path](const std::string& where, const absl::Status& s) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", where, ": ", s.message()));
  };
  if (path.extension() == ".jsonl") {
    task.format = "jsonl";
    int64_t line_number = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_number;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const Json j = Json::parse(line, nullptr, false);
      absl::StatusOr<EvalItem> item =
          j.is_discarded() ? absl::InvalidArgumentError("not valid JSON") : PlainItem(j);
      if (!item.ok()) return bad(absl::StrCat("line ", line_number), item.status());
      task.items.push_back(*std::move(item));
    }
  } else {
    std::stringstream text;
    text << in.rdbuf();
    const Json j = Json::parse(text.str(), nullptr, false);
    if (j.is_discarded()) return bad("the file", absl::InvalidArgumentError("not valid JSON"));
    const bool truthfulqa = j.is_array();
    if (!truthfulqa && !(j.is_object() && j.contains("examples") && j["examples"].is_array()))
      return bad("the file", absl::InvalidArgumentError(
                                 "expected TruthfulQA's mc_task.json (a list) or BIG-bench's task.json ({examples})"));
    task.format = truthfulqa ? "truthfulqa_mc" : "bigbench";
    if (!truthfulqa && j.contains("name") && j["name"].is_string()) task.name = j["name"].get<std::string>();
    const Json& items = truthfulqa ? j : j["examples"];
    for (size_t i = 0; i < items.size(); ++i) {
      absl::StatusOr<EvalItem> item = truthfulqa ? TruthfulQaItem(items[i]) : BigBenchItem(items[i]);
      if (!item.ok()) return bad(absl::StrCat("item ", i), item.status());
      task.items.push_back(*std::move(item));
    }
  }
  if (task.items.empty()) return bad("the file", absl::InvalidArgumentError("holds no items"));
  return task;
}

ChoiceScores ScoreChoices(const ChoiceSet& set, const std::vector<double>& ll) {
  const double best_score = *std::max_element(set.scores.begin(), set.scores.end());
  size_t best = 0, best_norm = 0;
  for (size_t i = 1; i < ll.size(); ++i) {
    if (ll[i] > ll[best]) best = i;
    if (ll[i] / set.choices[i].size() > ll[best_norm] / set.choices[best_norm].size()) best_norm = i;
  }
  const double top = *std::max_element(ll.begin(), ll.end());
  double all = 0.0, right = 0.0;
  for (size_t i = 0; i < ll.size(); ++i) {
    const double p = std::exp(ll[i] - top);  // the common factor exp(top) cancels
    all += p;
    if (set.scores[i] == best_score) right += p;
  }
  return {set.scores[best] == best_score, set.scores[best_norm] == best_score, right / all};
}

}  // namespace agora
