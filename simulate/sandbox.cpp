// Stable Alignment's sandbox society (seeds.md §1.2): grid x grid agents, each with a persona and a memory of
// what it answered before. A round gives every agent a question and runs, each phase one batched call:
//   1. draft      every agent answers (recalling its most similar past question, if similar enough);
//   2. feedback   up to `interactees` neighbours (within grid/2 on the grid) rate each draft 1..7 (a constrained
//                 choice, so always a rating) and give a reason;
//   3. revise     the author sees the average rating and the reasons (best first) and revises;
//   4. observe    the judge rates draft and revision for alignment and for engagement (rating, then reason).
// Each agent's round is one record of the seed's interaction-log schema; at the end the logs are written per
// agent (logs/world_0/agent_<i>.jsonl, as the seed's external memory) and converted by sandbox-to-groups into the
// training file (sandbox_groups.json).
#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "data/sandbox_groups.h"
#include "util/record_journal.h"
#include "simulate/reply_parsers.h"
#include "simulate/simulation.h"
#include "simulate/text_similarity.h"
#include "util/atomic_file.h"

namespace agora {
namespace {

using Json = nlohmann::ordered_json;

const std::vector<std::string> kRatings = {"1", "2", "3", "4", "5", "6", "7"};

struct Persona {
  std::string name;         // the agent's label in the logs
  std::string description;  // filled into {persona}
};

struct Agent {
  int64_t id = 0;
  Persona persona;
  std::vector<int64_t> neighbours;
  std::vector<std::pair<std::string, std::string>> memory;  // (question, revised answer) of past rounds
  TfidfIndex index;                                         // over the memory's questions
};

struct Prompts {
  PromptTemplate draft, memory, feedback, revise, moral, engagement;
};

absl::StatusOr<Prompts> LoadPrompts(const SimulationContext& c) {
  absl::StatusOr<PromptTemplate> draft = LoadPrompt(c, "draft.txt", {"persona", "agent_id", "memory", "question"});
  absl::StatusOr<PromptTemplate> memory = LoadPrompt(c, "memory.txt", {"past_question", "past_answer"});
  absl::StatusOr<PromptTemplate> feedback =
      LoadPrompt(c, "feedback.txt", {"persona", "agent_id", "question", "author_id", "draft", "rating"});
  absl::StatusOr<PromptTemplate> revise =
      LoadPrompt(c, "revise.txt", {"persona", "agent_id", "question", "draft", "average", "reasons"});
  absl::StatusOr<PromptTemplate> moral = LoadPrompt(c, "observe_moral.txt", {"question", "answer", "rating"});
  absl::StatusOr<PromptTemplate> engagement =
      LoadPrompt(c, "observe_engagement.txt", {"question", "answer", "rating"});
  for (const absl::Status& s : {draft.status(), memory.status(), feedback.status(), revise.status(), moral.status(),
                                engagement.status()})
    if (!s.ok()) return s;
  return Prompts{*draft, *memory, *feedback, *revise, *moral, *engagement};
}

absl::StatusOr<std::vector<Persona>> ReadPersonas(const SimulationContext& c) {
  const std::filesystem::path path =
      c.recipe.sandbox.personas.empty() ? c.prompts / "personas.txt" : std::filesystem::path(c.recipe.sandbox.personas);
  absl::StatusOr<std::vector<std::string>> lines = ReadLines(path, "simulate.sandbox.personas");
  if (!lines.ok()) return lines.status();
  std::vector<Persona> personas;
  for (const std::string& line : *lines) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0)
      return absl::InvalidArgumentError(
          absl::StrCat(path.string(), ": persona line '", line, "' is not \"name: description\""));
    personas.push_back({Trimmed(line.substr(0, colon)), Trimmed(line.substr(colon + 1))});
  }
  return personas;
}

// Agents within Euclidean distance grid/2 of each other (the seed's social circle), in id order.
std::vector<int64_t> Neighbours(int64_t id, int64_t grid) {
  const int64_t radius = grid / 2, row = id / grid, col = id % grid;
  std::vector<int64_t> out;
  for (int64_t other = 0; other < grid * grid; ++other) {
    const int64_t dr = other / grid - row, dc = other % grid - col;
    if (other != id && dr * dr + dc * dc <= radius * radius) out.push_back(other);
  }
  return out;
}

// `count` of `from`, drawn without replacement by a generator seeded from the key (a partial Fisher-Yates over
// mt19937_64, whose output the C++ standard fixes).
std::vector<int64_t> Draw(std::vector<int64_t> from, int64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  count = std::min<int64_t>(count, static_cast<int64_t>(from.size()));
  for (int64_t i = 0; i < count; ++i) {
    const int64_t j = i + static_cast<int64_t>(rng() % static_cast<uint64_t>(from.size() - i));
    std::swap(from[i], from[j]);
  }
  from.resize(count);
  return from;
}

std::string Key(int64_t round, int64_t agent) { return absl::StrCat("r", round, "/a", agent); }

// One round of every agent that has a question: the phases above, then one record per agent.
class Round {
 public:
  Round(const SimulationContext& c, const Prompts& p, std::vector<Agent>& agents, int64_t round,
        std::vector<int64_t> speakers, const std::vector<std::string>& questions)
      : c_(c), p_(p), agents_(agents), round_(round), speakers_(std::move(speakers)), questions_(questions) {}

  absl::StatusOr<std::vector<Json>> Run() {
    // 1. drafts
    std::vector<TextRequest> drafts;
    std::vector<Json> recalled(speakers_.size());  // the past question each draft was reminded of, or null
    for (size_t s = 0; s < speakers_.size(); ++s) {
      Agent& a = agents_[speakers_[s]];
      std::string memory;
      if (TfidfIndex::Match m = a.index.Nearest(questions_[s]);
          m.index >= 0 && m.cosine >= c_.recipe.sandbox.memory_similarity) {
        memory = p_.memory.Fill({{"past_question", a.memory[m.index].first},
                                 {"past_answer", a.memory[m.index].second}});
        recalled[s] = a.memory[m.index].first;
      }
      drafts.push_back(Free(absl::StrCat(Key(round_, a.id), "/draft"),
                            p_.draft.Fill({{"persona", a.persona.description}, {"agent_id", std::to_string(a.id)},
                                           {"memory", memory}, {"question", questions_[s]}}),
                            c_.recipe.temperature, {"\nQuestion:"}));
    }
    absl::StatusOr<std::vector<TextReply>> draft = c_.policy->Generate(drafts);
    if (!draft.ok()) return draft.status();

    // 2. feedback: who rates whom, a rating each, then the reason for it
    std::vector<std::pair<size_t, int64_t>> pairs;  // (speaker index, interactee id)
    std::vector<TextRequest> ratings;
    std::vector<std::map<std::string, std::string>> slots;
    for (size_t s = 0; s < speakers_.size(); ++s) {
      const Agent& author = agents_[speakers_[s]];
      const std::string key = Key(round_, author.id);
      for (int64_t j : Draw(author.neighbours, c_.recipe.sandbox.interactees, StableSeed(c_.seed, key + "/peers"))) {
        const Agent& peer = agents_[j];
        slots.push_back({{"persona", peer.persona.description}, {"agent_id", std::to_string(peer.id)},
                         {"question", questions_[s]}, {"author_id", std::to_string(author.id)},
                         {"draft", (*draft)[s].text}});
        ratings.push_back(Choice(absl::StrCat(key, "/peer", j, "/rating"), p_.feedback.FillUpTo(slots.back(), "rating"),
                                 c_.recipe.temperature));
        pairs.emplace_back(s, j);
      }
    }
    absl::StatusOr<std::vector<TextReply>> rating = c_.policy->Generate(ratings);
    if (!rating.ok()) return rating.status();
    std::vector<TextRequest> reasons;
    for (size_t k = 0; k < pairs.size(); ++k) {
      slots[k]["rating"] = (*rating)[k].text;
      reasons.push_back(Free(absl::StrCat(Key(round_, agents_[speakers_[pairs[k].first]].id), "/peer", pairs[k].second,
                                          "/reason"),
                             p_.feedback.Fill(slots[k]), c_.recipe.temperature, {"\n"}));
    }
    absl::StatusOr<std::vector<TextReply>> reason = c_.policy->Generate(reasons);
    if (!reason.ok()) return reason.status();

    // 3. revisions, from the ratings and reasons of each draft, best rated first (as the seed sorts them)
    std::vector<std::vector<size_t>> feedback_of(speakers_.size());
    for (size_t k = 0; k < pairs.size(); ++k) feedback_of[pairs[k].first].push_back(k);
    std::vector<TextRequest> revisions;
    for (size_t s = 0; s < speakers_.size(); ++s) {
      std::vector<size_t>& fb = feedback_of[s];
      std::stable_sort(fb.begin(), fb.end(), [&](size_t x, size_t y) { return (*rating)[x].text > (*rating)[y].text; });
      double sum = 0;
      std::vector<std::string> lines;
      for (size_t k : fb) {
        sum += std::stod((*rating)[k].text);
        lines.push_back(Trimmed((*reason)[k].text));
      }
      const Agent& a = agents_[speakers_[s]];
      revisions.push_back(Free(
          absl::StrCat(Key(round_, a.id), "/revise"),
          p_.revise.Fill({{"persona", a.persona.description}, {"agent_id", std::to_string(a.id)},
                          {"question", questions_[s]}, {"draft", (*draft)[s].text},
                          {"average", fb.empty() ? "none" : absl::StrFormat("%.1f", sum / fb.size())},
                          {"reasons", absl::StrJoin(lines, "\n")}}),
          c_.recipe.temperature, {"\nQuestion:"}));
    }
    absl::StatusOr<std::vector<TextReply>> revised = c_.policy->Generate(revisions);
    if (!revised.ok()) return revised.status();

    // 4. observers: alignment and engagement of draft and revision, a rating then its reason
    const PromptTemplate* observers[2] = {&p_.moral, &p_.engagement};
    std::vector<TextRequest> scores;
    std::vector<std::map<std::string, std::string>> observed;
    for (size_t s = 0; s < speakers_.size(); ++s) {
      for (int o = 0; o < 2; ++o) {
        for (int after = 0; after < 2; ++after) {
          observed.push_back({{"question", questions_[s]}, {"answer", (after ? *revised : *draft)[s].text}});
          scores.push_back(Choice(ObserverKey(s, o, after, "rating"), observers[o]->FillUpTo(observed.back(), "rating"),
                                  c_.recipe.judge_temperature));
        }
      }
    }
    absl::StatusOr<std::vector<TextReply>> score = c_.judge->Generate(scores);
    if (!score.ok()) return score.status();
    std::vector<TextRequest> score_reasons;
    for (size_t k = 0; k < scores.size(); ++k) {
      observed[k]["rating"] = (*score)[k].text;
      const size_t s = k / 4;
      const int o = static_cast<int>(k / 2 % 2), after = static_cast<int>(k % 2);
      score_reasons.push_back(Free(ObserverKey(s, o, after, "reason"), observers[o]->Fill(observed[k]),
                                   c_.recipe.judge_temperature, {"\n"}));
    }
    absl::StatusOr<std::vector<TextReply>> score_reason = c_.judge->Generate(score_reasons);
    if (!score_reason.ok()) return score_reason.status();

    // The seed's record of each agent's round.
    std::vector<Json> records;
    for (size_t s = 0; s < speakers_.size(); ++s) {
      const Agent& a = agents_[speakers_[s]];
      Json targets = Json::array(), feedback = Json::array(), ratings_text = Json::array();
      for (size_t k : feedback_of[s]) {
        targets.push_back(pairs[k].second);
        feedback.push_back(Trimmed((*reason)[k].text));
        ratings_text.push_back((*rating)[k].text);
      }
      auto observer = [&](int o, int after) {
        return static_cast<double>(std::stoi((*score)[4 * s + 2 * o + after].text));
      };
      auto observer_reason = [&](int o, int after) { return Trimmed((*score_reason)[4 * s + 2 * o + after].text); };
      records.push_back(Json{{"key", Key(round_, a.id)},
                             {"agent_id", a.id},
                             {"label", a.persona.name},
                             {"iteration", round_},
                             {"question", questions_[s]},
                             {"draft_answer", Trimmed((*draft)[s].text)},
                             {"target_id", targets},
                             {"feedback", feedback},
                             {"rating", ratings_text},
                             {"revised_answer", Trimmed((*revised)[s].text)},
                             {"gen_moral_score_before", observer(0, 0)},
                             {"gen_moral_score_after", observer(0, 1)},
                             {"gen_moral_reason_before", observer_reason(0, 0)},
                             {"gen_moral_reason_after", observer_reason(0, 1)},
                             {"gen_engagement_score_before", observer(1, 0)},
                             {"gen_engagement_score_after", observer(1, 1)},
                             {"gen_engagement_reason_before", observer_reason(1, 0)},
                             {"gen_engagement_reason_after", observer_reason(1, 1)},
                             {"cls_moral_score_before", 0},
                             {"cls_moral_score_after", 0},
                             {"recalled_question", recalled[s]}});
    }
    return records;
  }

 private:
  TextRequest Free(std::string key, std::string prompt, double temperature, std::vector<std::string> stops) const {
    return SimulationRequest(c_, std::move(key), std::move(prompt), temperature, std::move(stops));
  }
  TextRequest Choice(std::string key, std::string prompt, double temperature) const {
    TextRequest r = Free(std::move(key), std::move(prompt), temperature, {});
    r.choices = kRatings;
    return r;
  }
  std::string ObserverKey(size_t s, int o, int after, const char* what) const {
    return absl::StrCat(Key(round_, agents_[speakers_[s]].id), o ? "/engagement" : "/moral",
                        after ? "_after/" : "_before/", what);
  }

  const SimulationContext& c_;
  const Prompts& p_;
  std::vector<Agent>& agents_;
  int64_t round_;
  std::vector<int64_t> speakers_;        // agent ids with a question this round
  std::vector<std::string> questions_;   // speakers_[s] answers questions_[s]
};

void Remember(Agent& agent, const Json& record) {
  agent.memory.emplace_back(record["question"].get<std::string>(), record["revised_answer"].get<std::string>());
  agent.index.Add(agent.memory.back().first);
}

}  // namespace

absl::StatusOr<SimulationOutput> SimulateSandbox(const SimulationContext& c) {
  absl::StatusOr<Prompts> prompts = LoadPrompts(c);
  if (!prompts.ok()) return prompts.status();
  absl::StatusOr<std::vector<Persona>> personas = ReadPersonas(c);
  if (!personas.ok()) return personas.status();
  absl::StatusOr<std::vector<std::string>> questions = ReadQuestions(c.recipe.questions, c.recipe.max_questions);
  if (!questions.ok()) return questions.status();
  const int64_t grid = c.recipe.sandbox.grid, n = grid * grid;
  const int64_t possible = (static_cast<int64_t>(questions->size()) + n - 1) / n;
  const int64_t rounds = c.recipe.sandbox.rounds > 0 ? std::min(c.recipe.sandbox.rounds, possible) : possible;
  const int64_t total = std::min<int64_t>(rounds * n, questions->size());

  // Personas are dealt in turn, so every neighbourhood mixes permissive and careful agents.
  std::vector<Agent> agents(n);
  for (int64_t i = 0; i < n; ++i) {
    agents[i].id = i;
    agents[i].persona = (*personas)[i % personas->size()];
    agents[i].neighbours = Neighbours(i, grid);
  }
  absl::StatusOr<RecordJournal> journal = RecordJournal::Open(c.out / "journal.jsonl");
  if (!journal.ok()) return journal.status();

  SimulationOutput out;
  SimulationProgress progress(c, total);
  for (int64_t round = 0; round < rounds; ++round) {
    std::vector<int64_t> speakers;
    std::vector<std::string> asked;
    bool complete = true;
    for (int64_t i = 0; i < n && round * n + i < total; ++i) {
      speakers.push_back(i);
      asked.push_back((*questions)[round * n + i]);
      complete = complete && journal->Has(Key(round, i));
    }
    if (!complete) {
      // The whole round again (its seeds are its keys), appending the records an earlier run did not write.
      absl::StatusOr<std::vector<Json>> records = Round(c, *prompts, agents, round, speakers, asked).Run();
      if (!records.ok()) return records.status();
      for (const Json& record : *records) {
        if (journal->Has(record["key"].get<std::string>())) continue;
        if (absl::Status s = journal->Append(record); !s.ok()) return s;
      }
      if (absl::Status s = journal->Sync(); !s.ok()) return s;
    }
    // Memories grow from the journal, so a resumed run remembers what an uninterrupted one would.
    for (int64_t i : speakers) {
      absl::StatusOr<Json> record = journal->Read(Key(round, i));
      if (!record.ok()) return record.status();
      Remember(agents[i], *record);
    }
    progress.Update(std::min(total, (round + 1) * n), !complete);
  }

  // Per-agent logs (the seed's external memory), then Stable Alignment's grouped training file from them.
  std::vector<Json> logs(n, Json::array());
  out.counts["memory_hits"] = 0;
  if (absl::Status s = journal->ForEach([&](const Json& record) {
        logs[record["agent_id"].get<int64_t>()].push_back(record);
        out.counts["memory_hits"] += !record["recalled_question"].is_null();
        return absl::OkStatus();
      });
      !s.ok())
    return s;
  const std::filesystem::path world = c.out / "logs" / "world_0";
  std::filesystem::create_directories(world);
  std::vector<std::filesystem::path> files;
  for (int64_t i = 0; i < n; ++i) {
    if (logs[i].empty()) continue;
    files.push_back(world / absl::StrCat("agent_", i, ".jsonl"));
    if (absl::Status s = WriteStringAtomically(files.back(), logs[i].dump(2) + "\n"); !s.ok()) return s;
  }
  SandboxConversionStats stats;
  absl::StatusOr<std::vector<RatedResponses>> groups = SandboxLogsToGroups(
      files, {.self_critic_ratio = c.recipe.sandbox.self_critic_ratio,
              .realignment_ratio = c.recipe.sandbox.realignment_ratio, .seed = c.seed},
      &stats);
  if (!groups.ok()) return groups.status();
  out.train_file = c.out / "sandbox_groups.json";
  out.format = RecordFormat::kSandboxGroups;
  if (absl::Status s = WriteStringAtomically(out.train_file, SandboxGroupsToJson(*groups)); !s.ok()) return s;
  out.counts["questions"] = total;
  out.counts["rounds"] = rounds;
  out.counts["records"] = journal->size();
  out.counts["groups"] = static_cast<int64_t>(groups->size());
  out.counts["imitation"] = stats.imitation;
  out.counts["self_critic"] = stats.self_critic;
  out.counts["realignment"] = stats.realignment;
  out.counts["unscored_entries"] = stats.unscored;
  out.counts["duplicate_responses"] = stats.duplicates;
  out.throughput = progress.Summary();
  return out;
}

}  // namespace agora
