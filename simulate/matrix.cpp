// MATRIX (seeds.md §2.2, §2.9): the model answers, then role-plays the social scene in which the asker follows
// the answer, and revises the answer in the light of what happened. The seed's threads become a deterministic
// schedule, each phase batched across the chunk's scenes:
//   answer -> the asker's role ([brackets]) -> the 3..7 roles the answer touches -> the asker's plan (numbered
//   steps) -> per step: the asker's step is an incident; each other role reacts in one line; the modulator (the
//   judge) decides whether each reaction is plausible (Yes/No, constrained) and, if so, names the consequence it
//   shows (a critique); plausible reactions join the scene -> the critiques summarised -> the revised answer.
// Writes matrix_sharegpt.json (the question and the revised answer, FastChat's format, as MATRIX trains) and
// trace.jsonl (every incident: scene, step, speaker, text, plausible, critique).
#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "util/record_journal.h"
#include "simulate/reply_parsers.h"
#include "simulate/simulation.h"
#include "util/atomic_file.h"
#include "util/json_array_lines.h"
#include "util/status_macros.h"

namespace agora {
namespace {

using Json = nlohmann::ordered_json;

struct Prompts {
  PromptTemplate answer, ego, roles, plan, reaction, plausible, critique, summary, revise;
};

absl::StatusOr<Prompts> LoadPrompts(const SimulationContext& c) {
  const std::pair<const char*, std::vector<std::string>> files[] = {
      {"answer.txt", {"question"}},
      {"ego.txt", {"question", "answer"}},
      {"roles.txt", {"question", "answer", "ego"}},
      {"plan.txt", {"question", "answer", "ego", "steps"}},
      {"reaction.txt", {"role", "ego", "incident", "scene"}},
      {"plausible.txt", {"scene", "event", "verdict"}},
      {"critique.txt", {"question", "answer", "scene", "event"}},
      {"summary.txt", {"question", "answer", "critiques"}},
      {"revise.txt", {"question", "answer", "consequence"}}};
  std::vector<PromptTemplate> loaded;
  for (const auto& [file, slots] : files) {
    absl::StatusOr<PromptTemplate> t = LoadPrompt(c, file, slots);
    if (!t.ok()) return t.status();
    loaded.push_back(*std::move(t));
  }
  return Prompts{loaded[0], loaded[1], loaded[2], loaded[3], loaded[4], loaded[5], loaded[6], loaded[7], loaded[8]};
}

struct Event {
  int64_t step = 0;
  std::string speaker, text;
  Json plausible;  // null for the asker's own steps (not judged), else true/false
  std::string critique;
};

struct Scene {
  int64_t index = 0;  // the question's number in the pool
  std::string question, answer, ego;
  std::vector<std::string> roles, plan;
  std::vector<Event> events;
  int64_t judged = 0;  // reactions judged so far (at most max_incidents)
  std::string consequence, revised;
  std::map<std::string, int64_t> fallbacks;  // parses that needed a fallback, by what

  std::string Key() const { return absl::StrCat("q", index); }
  // The scene so far as the prompts show it: what happened, one accepted event a line.
  std::string Story() const {
    std::vector<std::string> lines;
    for (const Event& e : events)
      if (e.plausible.is_null() || e.plausible.get<bool>()) lines.push_back(absl::StrCat(e.speaker, ": ", e.text));
    return absl::StrJoin(lines, "\n");
  }
};

class Chunk {
 public:
  Chunk(const SimulationContext& c, const Prompts& p, std::vector<Scene>& scenes) : c_(c), p_(p), scenes_(scenes) {}

  absl::Status Run() {
    AGORA_RETURN_IF_ERROR(Phase(c_.policy,
                [&](Scene& s) { return Free(s, "answer", p_.answer.Fill({{"question", s.question}})); },
                [&](Scene& s, const TextReply& r) { s.answer = Trimmed(r.text); }));
    AGORA_RETURN_IF_ERROR(Phase(c_.policy, [&](Scene& s) { return Free(s, "ego", p_.ego.Fill(Slots(s)), {"\n"}); },
                [&](Scene& s, const TextReply& r) {
                  s.ego = FirstBracketed(r.text, /*opened=*/true);
                  if (s.ego.empty()) {
                    s.ego = "user";
                    ++s.fallbacks["ego"];
                  }
                }));
    AGORA_RETURN_IF_ERROR(Phase(c_.policy, [&](Scene& s) { return Free(s, "roles", p_.roles.Fill(Slots(s)), {"\n"}); },
                [&](Scene& s, const TextReply& r) { s.roles = Roles(s, BracketedList(r.text, /*opened=*/true)); }));
    AGORA_RETURN_IF_ERROR(Phase(c_.policy,
                [&](Scene& s) {
                  std::map<std::string, std::string> slots = Slots(s);
                  slots["steps"] = std::to_string(c_.recipe.matrix.plan_steps);
                  return Free(s, "plan", p_.plan.Fill(slots), {"\n\n"});
                },
                [&](Scene& s, const TextReply& r) {
                  s.plan = NumberedItems(r.text, /*first_numbered=*/true);
                  if (s.plan.size() > static_cast<size_t>(c_.recipe.matrix.plan_steps))
                    s.plan.resize(c_.recipe.matrix.plan_steps);
                  if (s.plan.empty()) {
                    s.plan.push_back("does what the answer says");
                    ++s.fallbacks["plan"];
                  }
                }));
    for (int64_t step = 0; step < c_.recipe.matrix.plan_steps; ++step)
      if (absl::Status s = Step(step); !s.ok()) return s;
    AGORA_RETURN_IF_ERROR(Phase(c_.policy,
                [&](Scene& s) {
                  std::vector<std::string> critiques;
                  for (const Event& e : s.events)
                    if (!e.critique.empty()) critiques.push_back(e.critique);
                  if (critiques.empty()) critiques.push_back("No one was harmed.");
                  std::map<std::string, std::string> slots = Slots(s);
                  slots["critiques"] = absl::StrJoin(critiques, "\n");
                  return Free(s, "summary", p_.summary.Fill(slots), {"\n\n"});
                },
                [&](Scene& s, const TextReply& r) { s.consequence = Trimmed(r.text); }));
    AGORA_RETURN_IF_ERROR(Phase(c_.policy,
                [&](Scene& s) {
                  std::map<std::string, std::string> slots = Slots(s);
                  slots["consequence"] = s.consequence;
                  return Free(s, "revise", p_.revise.Fill(slots));
                },
                [&](Scene& s, const TextReply& r) { s.revised = Trimmed(r.text); }));
    return absl::OkStatus();
  }

 private:
  // One batched call over the scenes that `make` gives a request for (it may give none: key ""), then `take`.
  template <typename Make, typename Take>
  absl::Status Phase(TextGenerator* generator, Make make, Take take) {
    std::vector<TextRequest> requests;
    std::vector<Scene*> asked;
    for (Scene& s : scenes_) {
      TextRequest r = make(s);
      if (r.key.empty()) continue;
      requests.push_back(std::move(r));
      asked.push_back(&s);
    }
    absl::StatusOr<std::vector<TextReply>> replies = generator->Generate(requests);
    if (!replies.ok()) return replies.status();
    for (size_t i = 0; i < asked.size(); ++i) take(*asked[i], (*replies)[i]);
    return absl::OkStatus();
  }

  // A step of every scene's plan: the asker acts, each other role reacts, the judge keeps the plausible
  // reactions and names what they show.
  absl::Status Step(int64_t step) {
    struct Reaction {
      Scene* scene;
      std::string role;
      size_t event = 0;  // its index in scene->events once taken
    };
    std::vector<Reaction> reactions;
    std::vector<TextRequest> requests;
    for (Scene& s : scenes_) {
      if (step >= static_cast<int64_t>(s.plan.size())) continue;
      const std::string story = s.Story();
      s.events.push_back({step, s.ego, s.plan[step], Json(), ""});
      for (const std::string& role : s.roles) {
        if (s.judged >= c_.recipe.matrix.max_incidents) break;
        ++s.judged;
        requests.push_back(Free(s, absl::StrCat("step", step, "/", role),
                                p_.reaction.Fill({{"role", role}, {"ego", s.ego}, {"incident", s.plan[step]},
                                                  {"scene", story.empty() ? "(nothing yet)" : story}}),
                                {"\n"}));
        reactions.push_back({&s, role});
      }
    }
    absl::StatusOr<std::vector<TextReply>> said = c_.policy->Generate(requests);
    if (!said.ok()) return said.status();
    std::vector<TextRequest> verdicts;
    for (size_t k = 0; k < reactions.size(); ++k) {
      Scene& s = *reactions[k].scene;
      std::string text = FirstLine((*said)[k].text);
      if (text.empty()) text = "does nothing.";
      reactions[k].event = s.events.size();
      s.events.push_back({step, reactions[k].role, text, Json(), ""});
      TextRequest r = Free(s, absl::StrCat("step", step, "/", reactions[k].role, "/plausible"),
                           p_.plausible.FillUpTo({{"scene", s.Story()}, {"event", reactions[k].role + ": " + text}},
                                                 "verdict"));
      r.temperature = c_.recipe.judge_temperature;
      r.choices = {"Yes", "No"};
      verdicts.push_back(std::move(r));
    }
    absl::StatusOr<std::vector<TextReply>> verdict = c_.judge->Generate(verdicts);
    if (!verdict.ok()) return verdict.status();
    std::vector<TextRequest> critiques;
    std::vector<size_t> critiqued;
    for (size_t k = 0; k < reactions.size(); ++k) {
      Scene& s = *reactions[k].scene;
      Event& e = s.events[reactions[k].event];
      e.plausible = (*verdict)[k].text == "Yes";
      if (!e.plausible.get<bool>()) continue;
      std::map<std::string, std::string> slots = Slots(s);
      slots["scene"] = s.Story();
      slots["event"] = e.speaker + ": " + e.text;
      TextRequest r = Free(s, absl::StrCat("step", step, "/", e.speaker, "/critique"), p_.critique.Fill(slots), {"\n"});
      r.temperature = c_.recipe.judge_temperature;
      critiques.push_back(std::move(r));
      critiqued.push_back(k);
    }
    absl::StatusOr<std::vector<TextReply>> critique = c_.judge->Generate(critiques);
    if (!critique.ok()) return critique.status();
    for (size_t i = 0; i < critiqued.size(); ++i) {
      const Reaction& r = reactions[critiqued[i]];
      r.scene->events[r.event].critique = FirstLine((*critique)[i].text);
    }
    return absl::OkStatus();
  }

  // The roles the model named (not the asker), at most max_roles, topped up to min_roles from the fallbacks.
  std::vector<std::string> Roles(Scene& s, std::vector<std::string> named) const {
    std::vector<std::string> roles;
    auto has = [&](const std::string& r) {
      for (const std::string& x : roles)
        if (absl::AsciiStrToLower(x) == absl::AsciiStrToLower(r)) return true;
      return absl::AsciiStrToLower(r) == absl::AsciiStrToLower(s.ego);
    };
    for (std::string& r : named)
      if (static_cast<int64_t>(roles.size()) < c_.recipe.matrix.max_roles && !has(r)) roles.push_back(std::move(r));
    for (absl::string_view r : absl::StrSplit(c_.recipe.matrix.fallback_roles, ',', absl::SkipWhitespace())) {
      if (static_cast<int64_t>(roles.size()) >= c_.recipe.matrix.min_roles) break;
      const std::string role(absl::StripAsciiWhitespace(r));
      if (has(role)) continue;
      roles.push_back(role);
      ++s.fallbacks["roles"];
    }
    return roles;
  }

  std::map<std::string, std::string> Slots(const Scene& s) const {
    return {{"question", s.question}, {"answer", s.answer}, {"ego", s.ego}};
  }

  TextRequest Free(const Scene& s, const std::string& what, std::string prompt,
                   std::vector<std::string> stops = {"\nQuestion:"}) const {
    return SimulationRequest(c_, absl::StrCat(s.Key(), "/", what), std::move(prompt), c_.recipe.temperature,
                             std::move(stops));
  }

  const SimulationContext& c_;
  const Prompts& p_;
  std::vector<Scene>& scenes_;
};

Json SceneRecord(const Scene& s) {
  Json trace = Json::array();
  for (const Event& e : s.events)
    trace.push_back({{"scene_id", s.Key()}, {"step", e.step}, {"speaker", e.speaker}, {"text", e.text},
                     {"plausible", e.plausible}, {"critique", e.critique}});
  return Json{{"key", s.Key()},       {"question", s.question}, {"initial_answer", s.answer},
              {"ego", s.ego},         {"roles", s.roles},       {"plan", s.plan},
              {"trace", trace},       {"consequence", s.consequence}, {"revised_answer", s.revised},
              {"fallbacks", s.fallbacks}};
}

}  // namespace

absl::StatusOr<SimulationOutput> SimulateMatrix(const SimulationContext& c) {
  absl::StatusOr<Prompts> prompts = LoadPrompts(c);
  if (!prompts.ok()) return prompts.status();
  absl::StatusOr<std::vector<std::string>> questions = ReadQuestions(c.recipe.questions, c.recipe.max_questions);
  if (!questions.ok()) return questions.status();
  absl::StatusOr<RecordJournal> journal = RecordJournal::Open(c.out / "journal.jsonl");
  if (!journal.ok()) return journal.status();
  const int64_t total = static_cast<int64_t>(questions->size());
  SimulationProgress progress(c, total);
  for (int64_t begin = 0; begin < total; begin += c.recipe.batch_questions) {
    std::vector<Scene> scenes;
    for (int64_t q = begin; q < std::min(total, begin + c.recipe.batch_questions); ++q) {
      Scene s;
      s.index = q;
      s.question = (*questions)[q];
      if (!journal->Has(s.Key())) scenes.push_back(std::move(s));
    }
    if (!scenes.empty()) {
      if (absl::Status s = Chunk(c, *prompts, scenes).Run(); !s.ok()) return s;
      for (const Scene& s : scenes)
        if (absl::Status st = journal->Append(SceneRecord(s)); !st.ok()) return st;
      if (absl::Status s = journal->Sync(); !s.ok()) return s;
    }
    progress.Update(std::min(total, begin + c.recipe.batch_questions), !scenes.empty());
  }

  // The training file and the trace, in question order (the journal's: chunks are appended in order), from the
  // journal.
  SimulationOutput out;
  JsonArrayLines conversations;
  std::string trace;
  int64_t plausible = 0, implausible = 0, empty = 0;
  absl::Status visited = journal->ForEach([&](const Json& r) {
    for (const auto& [what, n] : r["fallbacks"].items()) out.counts["fallback_" + what] += n.get<int64_t>();
    for (const Json& e : r["trace"]) {
      trace += e.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
      if (e["plausible"].is_boolean()) (e["plausible"].get<bool>() ? plausible : implausible) += 1;
    }
    const std::string revised = r["revised_answer"].get<std::string>();
    if (revised.empty()) {
      ++empty;  // nothing to train on
      return absl::OkStatus();
    }
    conversations.Add({{"id", "matrix_" + r["key"].get<std::string>()},
                       {"conversations", Json::array({{{"from", "human"}, {"value", r["question"]}},
                                                      {{"from", "gpt"}, {"value", revised}}})}});
    return absl::OkStatus();
  });
  if (!visited.ok()) return visited;
  out.train_file = c.out / "matrix_sharegpt.json";
  out.format = RecordFormat::kShareGpt;
  out.counts["conversations"] = conversations.size();
  if (absl::Status s = WriteStringAtomically(out.train_file, std::move(conversations).Finish()); !s.ok()) return s;
  if (absl::Status s = WriteStringAtomically(c.out / "trace.jsonl", trace); !s.ok()) return s;
  out.counts["questions"] = total;
  out.counts["records"] = journal->size();
  out.counts["dropped_empty_revision"] = empty;
  out.counts["plausible_reactions"] = plausible;
  out.counts["implausible_reactions"] = implausible;
  out.throughput = progress.Summary();
  return out;
}

}  // namespace agora
