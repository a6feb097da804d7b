// SELF-ALIGN (seeds.md §3.1-3.2), in two stages:
//   1. Topic-guided red-teaming: for each seed question type, the model brainstorms topics (a "- " list, EOS
//      banned as the seed does, up to topics_per_type new ones, de-duplicated case-insensitively), then writes
//      questions for each (type, topic) from the type's seed question; a question whose ROUGE-L F with one
//      already kept exceeds max_rouge_l is a near duplicate and dropped. Journaled once as the record "prompts".
//   2. Principle-driven answers to the pool's and the generated questions: the meta prompt (the principles and
//      the exemplars) is the one long prefix every request shares, computed once by the prefix cache. The model
//      writes its internal thoughts (up to "\n\nAssistant:"), then its answer (up to "\n\nUser:"), with the first
//      token of "Sorry" biased by sorry_bias. Filtering as Dromedary's merge: an empty answer, exemplar leakage,
//      an apology opening, or a complete answer shorter than min_answer_chars is dropped; a complete answer gets
//      the end marker "\n\n### User\n", one cut by the length limit ends at its last space without it.
// The kept answers are engraved: Dromedary records {example_id, instruction, input, output} without the
// principles in the prompt (self_align.json; training adds its own short meta prompt, data.meta_prompts).
#include <algorithm>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "util/record_journal.h"
#include "simulate/reply_parsers.h"
#include "simulate/simulation.h"
#include "simulate/text_similarity.h"
#include "util/atomic_file.h"
#include "util/json_array_lines.h"
#include "util/read_file.h"

namespace agora {
namespace {

using Json = nlohmann::ordered_json;

constexpr char kEndMarker[] = "\n\n### User\n";
// Text that shows the exemplars leaking into an answer rather than an answer.
const char* const kLeakage[] = {"User:", "Assistant (internal thoughts)", "Assistant (auto reply)"};

struct SeedQuestion {
  std::string type, topic, question;
};

absl::StatusOr<std::vector<SeedQuestion>> ReadSeeds(const std::filesystem::path& path) {
  if (path.empty()) return absl::InvalidArgumentError("simulate.self_align.seed_topics is required");
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  std::vector<SeedQuestion> seeds;
  int64_t line_number = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++line_number;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const Json r = Json::parse(line.begin(), line.end(), nullptr, false);
    SeedQuestion s;
    for (auto [field, member] : {std::pair{"question_type", &s.type}, {"topic", &s.topic}, {"question", &s.question}}) {
      if (r.is_discarded() || !r.is_object() || !r.contains(field) || !r[field].is_string())
        return absl::InvalidArgumentError(
            absl::StrCat(path.string(), ":", line_number, ": expected {question_type, topic, question} strings"));
      *member = r[field].get<std::string>();
    }
    seeds.push_back(std::move(s));
  }
  if (seeds.empty()) return absl::InvalidArgumentError(absl::StrCat(path.string(), ": no seed questions"));
  return seeds;
}

// A brainstormed topic as the seed keeps them: one to three words, capitalised, no trailing punctuation.
std::string CleanTopic(std::string topic) {
  while (!topic.empty() && absl::ascii_ispunct(static_cast<unsigned char>(topic.back()))) topic.pop_back();
  topic = Trimmed(topic);
  const size_t words = Words(topic).size();
  if (words == 0 || words > 3) return "";
  topic[0] = absl::ascii_toupper(static_cast<unsigned char>(topic[0]));
  return topic;
}

class SelfAlign {
 public:
  SelfAlign(const SimulationContext& c) : c_(c) {}

  absl::Status LoadPrompts() {
    absl::StatusOr<PromptTemplate> topics = LoadPrompt(c_, "topics.txt", {"question_type", "examples"});
    absl::StatusOr<PromptTemplate> questions = LoadPrompt(c_, "questions.txt", {"question_type", "topic", "examples"});
    absl::StatusOr<PromptTemplate> meta = LoadPrompt(c_, "meta_prompt.txt", {"principles", "exemplars"});
    absl::StatusOr<PromptTemplate> answer = LoadPrompt(c_, "answer.txt", {"question"});
    for (const absl::Status& s : {topics.status(), questions.status(), meta.status(), answer.status()})
      if (!s.ok()) return s;
    topics_.emplace(*topics);
    questions_.emplace(*questions);
    answer_.emplace(*answer);
    const SelfAlignRecipe& r = c_.recipe.self_align;
    absl::StatusOr<std::vector<std::string>> principles =
        ReadLines(r.principles.empty() ? c_.prompts / "principles.txt" : std::filesystem::path(r.principles),
                  "simulate.self_align.principles");
    if (!principles.ok()) return principles.status();
    absl::StatusOr<std::string> exemplars =
        ReadFile(r.exemplars.empty() ? c_.prompts / "exemplars.txt" : std::filesystem::path(r.exemplars));
    if (!exemplars.ok()) return exemplars.status();
    meta_prompt_ = meta->Fill({{"principles", NumberedLines(*principles)}, {"exemplars", *exemplars}});
    return absl::OkStatus();
  }

  // Stage 1: the generated questions, each with its type and topic.
  absl::StatusOr<Json> GenerateQuestions(const std::vector<SeedQuestion>& seeds,
                                         const std::vector<std::string>& pool, std::map<std::string, int64_t>& counts) {
    std::vector<std::string> types;
    for (const SeedQuestion& s : seeds)
      if (std::find(types.begin(), types.end(), s.type) == types.end()) types.push_back(s.type);
    // Topics: the seeds' and the brainstormed ones, per type.
    std::vector<TextRequest> brainstorm;
    for (const std::string& type : types) {
      std::vector<std::string> examples;
      for (const SeedQuestion& s : seeds)
        if (s.type == type) examples.push_back("- " + s.topic);
      TextRequest r = Request(absl::StrCat("topics/", type),
                              topics_->Fill({{"question_type", type}, {"examples", absl::StrJoin(examples, "\n")}}));
      r.ban_eos = true;
      r.stop_strings = {"\n\n"};
      brainstorm.push_back(std::move(r));
    }
    absl::StatusOr<std::vector<TextReply>> listed = c_.policy->Generate(brainstorm);
    if (!listed.ok()) return listed.status();
    struct Topic {
      std::string type, topic;
      const SeedQuestion* example;
    };
    std::vector<Topic> topics;
    for (size_t t = 0; t < types.size(); ++t) {
      const SeedQuestion* example = nullptr;
      std::vector<std::string> seen;
      for (const SeedQuestion& s : seeds) {
        if (s.type != types[t]) continue;
        if (!example) example = &s;
        topics.push_back({types[t], s.topic, &s});
        seen.push_back(absl::AsciiStrToLower(s.topic));
      }
      int64_t added = 0;
      for (const std::string& item : DashItems((*listed)[t].text)) {
        const std::string topic = CleanTopic(item);
        if (topic.empty()) {
          ++counts["dropped_topics_malformed"];
          continue;
        }
        if (std::find(seen.begin(), seen.end(), absl::AsciiStrToLower(topic)) != seen.end()) {
          ++counts["dropped_topics_duplicate"];
          continue;
        }
        if (added == c_.recipe.self_align.topics_per_type) break;
        seen.push_back(absl::AsciiStrToLower(topic));
        topics.push_back({types[t], topic, example});
        ++added;
      }
      counts["topics"] += added;
    }
    // Questions per (type, topic), near duplicates of anything kept (the pool included) dropped.
    std::vector<TextRequest> asks;
    for (const Topic& t : topics) {
      TextRequest r = Request(absl::StrCat("questions/", t.type, "/", t.topic),
                              questions_->Fill({{"question_type", t.type},
                                                {"topic", t.topic},
                                                {"examples", "- " + t.example->question}}));
      r.stop_strings = {"\n\n"};
      asks.push_back(std::move(r));
    }
    absl::StatusOr<std::vector<TextReply>> written = c_.policy->Generate(asks);
    if (!written.ok()) return written.status();
    std::vector<std::vector<std::string>> kept_words;
    for (const std::string& q : pool) kept_words.push_back(Words(q));
    Json generated = Json::array();
    for (size_t t = 0; t < topics.size(); ++t) {
      int64_t added = 0;
      for (const std::string& question : DashItems((*written)[t].text)) {
        if (added == c_.recipe.self_align.questions_per_topic) break;
        const std::vector<std::string> words = Words(question);
        if (words.size() < 3) {
          ++counts["dropped_questions_short"];
          continue;
        }
        bool near = false;
        for (const std::vector<std::string>& k : kept_words)
          near = near || RougeL(words, k) > c_.recipe.self_align.max_rouge_l;
        if (near) {
          ++counts["dropped_questions_near_duplicate"];
          continue;
        }
        kept_words.push_back(words);
        generated.push_back({{"instruction", question}, {"topic", topics[t].topic}, {"question_type", topics[t].type}});
        ++added;
      }
    }
    return generated;
  }

  // Stage 2 for one chunk: (thoughts, answer, complete) per question.
  absl::StatusOr<std::vector<Json>> Answer(const std::vector<std::pair<int64_t, std::string>>& chunk) {
    std::vector<TextRequest> thinking;
    for (const auto& [index, question] : chunk) {
      TextRequest r = Request(absl::StrCat("q", index, "/thoughts"), Prompt(question));
      r.stop_strings = {"\n\nAssistant:", "\n\nUser:"};
      thinking.push_back(std::move(r));
    }
    absl::StatusOr<std::vector<TextReply>> thoughts = c_.policy->Generate(thinking);
    if (!thoughts.ok()) return thoughts.status();
    std::vector<TextRequest> answering;
    for (size_t i = 0; i < chunk.size(); ++i) {
      TextRequest r = Request(absl::StrCat("q", chunk[i].first, "/answer"),
                              Prompt(chunk[i].second) + (*thoughts)[i].text + "\n\nAssistant:");
      r.stop_strings = {"\n\nUser:"};
      r.first_token_bias = {{"Sorry", c_.recipe.self_align.sorry_bias}};
      answering.push_back(std::move(r));
    }
    absl::StatusOr<std::vector<TextReply>> answers = c_.policy->Generate(answering);
    if (!answers.ok()) return answers.status();
    std::vector<Json> records;
    for (size_t i = 0; i < chunk.size(); ++i)
      records.push_back(Filter(chunk[i].first, chunk[i].second, Trimmed((*thoughts)[i].text), (*answers)[i]));
    return records;
  }

 private:
  std::string Prompt(const std::string& question) const {
    return meta_prompt_ + answer_->Fill({{"question", question}});
  }

  // The journal record of one answer: what was generated, and the engraved record or why there is none.
  Json Filter(int64_t index, const std::string& question, const std::string& thoughts, const TextReply& reply) const {
    std::string answer = Trimmed(reply.text);
    std::string dropped;
    if (answer.empty()) dropped = "empty";
    for (const char* leak : kLeakage)
      if (dropped.empty() && absl::StrContains(answer, leak)) dropped = "exemplar_leakage";
    if (dropped.empty() && (absl::StartsWith(answer, "I'm sorry") || absl::StartsWith(answer, "I am sorry")))
      dropped = "apology";
    const int64_t chars = static_cast<int64_t>(answer.size());
    if (dropped.empty() && reply.complete && chars < c_.recipe.self_align.min_answer_chars) dropped = "short";
    std::string output;
    if (dropped.empty()) {
      if (reply.complete) {
        output = answer + kEndMarker;
      } else {
        const size_t space = answer.rfind(' ');
        output = space == std::string::npos ? answer : answer.substr(0, space);
      }
    }
    Json record = {{"key", absl::StrCat("q", index)}, {"question", question}, {"thoughts", thoughts},
                   {"answer", answer},                {"complete", reply.complete}};
    if (dropped.empty()) {
      record["engraved"] = {{"example_id", index}, {"instruction", question}, {"input", ""}, {"output", output}};
    } else {
      record["dropped"] = dropped;
    }
    return record;
  }

  TextRequest Request(std::string key, std::string prompt) const {
    return SimulationRequest(c_, std::move(key), std::move(prompt), c_.recipe.temperature);
  }

  const SimulationContext& c_;
  std::optional<PromptTemplate> topics_, questions_, answer_;
  std::string meta_prompt_;
};

}  // namespace

absl::StatusOr<SimulationOutput> SimulateSelfAlign(const SimulationContext& c) {
  SelfAlign self_align(c);
  if (absl::Status s = self_align.LoadPrompts(); !s.ok()) return s;
  std::vector<std::string> pool;
  if (!c.recipe.questions.empty()) {
    absl::StatusOr<std::vector<std::string>> questions = ReadQuestions(c.recipe.questions, c.recipe.max_questions);
    if (!questions.ok()) return questions.status();
    pool = *std::move(questions);
  }
  absl::StatusOr<RecordJournal> journal = RecordJournal::Open(c.out / "journal.jsonl");
  if (!journal.ok()) return journal.status();
  SimulationOutput out;

  // Stage 1, once: its record holds the generated questions and its counts.
  if (!journal->Has("prompts")) {
    absl::StatusOr<std::vector<SeedQuestion>> seeds = ReadSeeds(c.recipe.self_align.seed_topics);
    if (!seeds.ok()) return seeds.status();
    std::map<std::string, int64_t> counts;
    absl::StatusOr<Json> generated = self_align.GenerateQuestions(*seeds, pool, counts);
    if (!generated.ok()) return generated.status();
    if (absl::Status s = journal->Append({{"key", "prompts"}, {"questions", *generated}, {"counts", counts}}); !s.ok())
      return s;
    if (absl::Status s = journal->Sync(); !s.ok()) return s;
  }
  absl::StatusOr<Json> stage1_record = journal->Read("prompts");
  if (!stage1_record.ok()) return stage1_record.status();
  const Json& stage1 = *stage1_record;
  for (const auto& [what, n] : stage1.at("counts").items()) out.counts[what] = n.get<int64_t>();
  std::vector<std::string> questions = pool;
  for (const Json& q : stage1.at("questions")) questions.push_back(q["instruction"].get<std::string>());

  // Stage 2, chunk by chunk.
  const int64_t total = static_cast<int64_t>(questions.size());
  SimulationProgress progress(c, total);
  for (int64_t begin = 0; begin < total; begin += c.recipe.batch_questions) {
    std::vector<std::pair<int64_t, std::string>> chunk;
    for (int64_t q = begin; q < std::min(total, begin + c.recipe.batch_questions); ++q)
      if (!journal->Has(absl::StrCat("q", q))) chunk.emplace_back(q, questions[q]);
    if (!chunk.empty()) {
      absl::StatusOr<std::vector<Json>> records = self_align.Answer(chunk);
      if (!records.ok()) return records.status();
      for (Json& record : *records)
        if (absl::Status s = journal->Append(std::move(record)); !s.ok()) return s;
      if (absl::Status s = journal->Sync(); !s.ok()) return s;
    }
    progress.Update(std::min(total, begin + c.recipe.batch_questions), !chunk.empty());
  }

  // The engraved records, in question order (the journal's: chunks are appended in order).
  JsonArrayLines engraved;
  absl::Status visited = journal->ForEach([&](const Json& r) {
    if (r["key"] == "prompts") return absl::OkStatus();
    if (r.contains("dropped")) {
      ++out.counts["dropped_" + r["dropped"].get<std::string>()];
      return absl::OkStatus();
    }
    engraved.Add(r["engraved"]);
    return absl::OkStatus();
  });
  if (!visited.ok()) return visited;
  out.train_file = c.out / "self_align.json";
  out.format = RecordFormat::kDromedary;
  out.counts["records"] = engraved.size();
  if (absl::Status s = WriteStringAtomically(out.train_file, std::move(engraved).Finish()); !s.ok()) return s;
  out.counts["pool_questions"] = static_cast<int64_t>(pool.size());
  out.counts["generated_questions"] = static_cast<int64_t>(stage1.at("questions").size());
  out.counts["questions"] = total;
  out.throughput = progress.Summary();
  return out;
}

}  // namespace agora
