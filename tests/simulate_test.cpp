// agora simulate's parts (templates, parsers, similarity, the journal) and the three simulators' data flow on
// scripted models: which agent sees whose answer, where each rating lands, what is filtered and why.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "data/jsonl_dataset.h"
#include "simulate/prompt_template.h"
#include "simulate/reply_parsers.h"
#include "simulate/simulation.h"
#include "simulate/text_similarity.h"
#include "util/read_file.h"
#include "util/record_journal.h"

namespace agora {
namespace {

using Json = nlohmann::ordered_json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

const std::filesystem::path kSource = AGORA_SOURCE_DIR;

std::filesystem::path Scratch(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "agora_simulate_test" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A model whose reply to each request is a function of the request, recording every request it was sent.
class ScriptedGenerator : public TextGenerator {
 public:
  explicit ScriptedGenerator(std::function<std::string(const TextRequest&)> reply) : reply_(std::move(reply)) {}
  absl::StatusOr<std::vector<TextReply>> Generate(const std::vector<TextRequest>& requests) override {
    std::vector<TextReply> replies;
    for (const TextRequest& r : requests) {
      EXPECT_TRUE(seen.emplace(r.key, r).second) << "key asked twice: " << r.key;
      EXPECT_EQ(r.seed, StableSeed(1234, r.key)) << r.key;
      std::string text = reply_(r);
      if (!r.choices.empty()) {
        EXPECT_TRUE(std::find(r.choices.begin(), r.choices.end(), text) != r.choices.end()) << r.key << ": " << text;
      }
      replies.push_back({text, true});
    }
    counters_.requests += static_cast<int64_t>(requests.size());
    return replies;
  }
  GeneratorCounters counters() const override { return counters_; }
  const TextRequest& at(const std::string& key) const {
    auto it = seen.find(key);
    EXPECT_NE(it, seen.end()) << "never asked: " << key;
    static const TextRequest kNone;
    return it == seen.end() ? kNone : it->second;
  }

  std::map<std::string, TextRequest> seen;

 private:
  std::function<std::string(const TextRequest&)> reply_;
  GeneratorCounters counters_;
};

SimulationContext Context(SimulationMethod method, const std::filesystem::path& out, TextGenerator* policy,
                          TextGenerator* judge) {
  SimulationContext c;
  c.recipe.method = method;
  c.seed = 1234;
  c.policy = policy;
  c.judge = judge;
  c.prompts = kSource / "simulate" / "prompts" / SimulationMethodName(method);
  c.out = out;
  return c;
}

std::filesystem::path WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

// --- parts ------------------------------------------------------------------------------------------------

TEST(PromptTemplate, FillsSlotsAndSplitsAtTheChoice) {
  absl::StatusOr<PromptTemplate> t =
      PromptTemplate::FromText("Q: {question}\nRating: {rating}\nReason:", "t.txt", {"question", "rating"});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->Fill({{"question", "why {not}?"}, {"rating", "5"}}), "Q: why {not}?\nRating: 5\nReason:");
  EXPECT_EQ(t->FillUpTo({{"question", "why?"}}, "rating"), "Q: why?\nRating:");
}

TEST(PromptTemplate, RefusesUnknownAndMissingSlotsNamingTheFile) {
  EXPECT_THAT(std::string(PromptTemplate::FromText("{questoin}", "p/a.txt", {"question"}).status().message()),
              HasSubstr("p/a.txt: unknown slot {questoin}"));
  EXPECT_THAT(std::string(PromptTemplate::FromText("no slot", "p/b.txt", {"question"}).status().message()),
              HasSubstr("p/b.txt: slot {question} is missing"));
  EXPECT_THAT(std::string(PromptTemplate::FromText("{question", "p/c.txt", {"question"}).status().message()),
              HasSubstr("not closed"));
}

TEST(PromptTemplate, EveryShippedPromptLoads) {
  // The simulators' own slot lists are checked when they run; here: every file has balanced braces.
  for (const auto& entry : std::filesystem::recursive_directory_iterator(kSource / "simulate" / "prompts")) {
    if (entry.path().extension() != ".txt") continue;
    absl::StatusOr<std::string> text = ReadFile(entry.path());
    ASSERT_TRUE(text.ok());
    EXPECT_EQ(std::count(text->begin(), text->end(), '{'), std::count(text->begin(), text->end(), '}'))
        << entry.path();
  }
}

TEST(ReplyParsers, RolesListsAndLines) {
  EXPECT_EQ(FirstBracketed("student] who is late", true), "student");
  EXPECT_EQ(FirstBracketed("the [bank robber] or [thief]", false), "bank robber");
  EXPECT_EQ(FirstBracketed("no brackets", false), "");
  EXPECT_THAT(BracketedList("neighbour], [Police officer], [neighbour], [], [doctor]", true),
              ElementsAre("neighbour", "Police officer", "doctor"));
  EXPECT_THAT(NumberedItems(" buys a mask\n2. enters the bank\n3) leaves\nThe end", true),
              ElementsAre("buys a mask", "enters the bank", "leaves"));
  EXPECT_THAT(NumberedItems("1. a\n2. b", false), ElementsAre("a", "b"));
  EXPECT_THAT(DashItems("Space Travel\n- Ancient Rome\n-  Tax Law \nnot a topic\n- Late"),
              ElementsAre("Space Travel", "Ancient Rome", "Tax Law"));
  EXPECT_EQ(FirstLine("\n  \n hello there \nsecond"), "hello there");
}

TEST(TextSimilarity, RougeLOnCraftedCases) {
  EXPECT_DOUBLE_EQ(RougeL(Words("How do I bake bread?"), Words("how do i BAKE bread")), 1.0);
  // LCS "how do i bread" = 4 of 5 and 4 of 6 words: P = 4/6, R = 4/5, F = 2PR/(P+R) = 8/11.
  EXPECT_NEAR(RougeL(Words("how do i bake bread"), Words("how do i make good bread")), 8.0 / 11.0, 1e-12);
  EXPECT_DOUBLE_EQ(RougeL(Words("apples"), Words("oranges")), 0.0);
  EXPECT_DOUBLE_EQ(RougeL({}, Words("x")), 0.0);
}

TEST(TextSimilarity, TfidfFindsTheClosestQuestion) {
  TfidfIndex index;
  EXPECT_EQ(index.Nearest("anything").index, -1);
  index.Add("How do I bake sourdough bread at home?");
  index.Add("What is the capital of France?");
  index.Add("How can I fix a flat bicycle tyre?");
  TfidfIndex::Match m = index.Nearest("how to bake bread at home");
  EXPECT_EQ(m.index, 0);
  EXPECT_GT(m.cosine, 0.5);
  EXPECT_LT(m.cosine, 1.0);
  EXPECT_NEAR(index.Nearest("What is the capital of France?").cosine, 1.0, 1e-12);
  EXPECT_EQ(index.Nearest("zebra").index, -1);
}

TEST(RecordJournal, AppendsReopensAndCutsATornLine) {
  const std::filesystem::path dir = Scratch("journal");
  const std::filesystem::path path = dir / "journal.jsonl";
  {
    absl::StatusOr<RecordJournal> j = RecordJournal::Open(path);
    ASSERT_TRUE(j.ok()) << j.status();
    ASSERT_TRUE(j->Append({{"key", "a"}, {"v", 1}}).ok());
    EXPECT_EQ(j->Read("a")->at("v"), 1) << "a record is readable as soon as it is appended";
    ASSERT_TRUE(j->Append({{"key", "b"}, {"v", 2}}).ok());
    EXPECT_EQ(j->Append({{"key", "a"}}).code(), absl::StatusCode::kAlreadyExists);
    EXPECT_FALSE(j->Append({{"v", 3}}).ok());
    ASSERT_TRUE(j->Sync().ok());
  }
  std::ofstream(path, std::ios::app) << R"({"key": "c", "v": )";  // a write cut by a kill
  absl::StatusOr<RecordJournal> j = RecordJournal::Open(path);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->torn_lines(), 1);
  ASSERT_EQ(j->size(), 2);
  EXPECT_EQ(j->Read("b")->at("v"), 2);
  EXPECT_EQ(j->Read("c").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(j->Has("b"));
  EXPECT_FALSE(j->Has("c"));
  ASSERT_TRUE(j->Append({{"key", "c"}, {"v", 3}}).ok());
  absl::StatusOr<std::string> text = ReadFile(path);
  EXPECT_EQ(*text, "{\"key\":\"a\",\"v\":1}\n{\"key\":\"b\",\"v\":2}\n{\"key\":\"c\",\"v\":3}\n");

  WriteFile(dir / "bad.jsonl", "{\"key\":\"a\"}\nnot json\n{\"key\":\"b\"}\n");
  EXPECT_THAT(std::string(RecordJournal::Open(dir / "bad.jsonl").status().message()), HasSubstr("bad.jsonl:2"));
  WriteFile(dir / "twice.jsonl", "{\"key\":\"a\"}\n{\"key\":\"a\"}\n");
  EXPECT_THAT(std::string(RecordJournal::Open(dir / "twice.jsonl").status().message()),
              HasSubstr("twice.jsonl:2: key 'a' is already"));
}

TEST(ReadQuestions, TextAndJsonlPools) {
  const std::filesystem::path dir = Scratch("questions");
  absl::StatusOr<std::vector<std::string>> txt =
      ReadQuestions(WriteFile(dir / "q.txt", "first?\n\n  second? \nthird?\n"), 2);
  ASSERT_TRUE(txt.ok());
  EXPECT_THAT(*txt, ElementsAre("first?", "second?"));
  absl::StatusOr<std::vector<std::string>> jsonl = ReadQuestions(
      WriteFile(dir / "q.jsonl", "{\"question\": \"a?\"}\n{\"instruction\": \"b?\", \"input\": \"\"}\n"), 0);
  ASSERT_TRUE(jsonl.ok());
  EXPECT_THAT(*jsonl, ElementsAre("a?", "b?"));
  EXPECT_THAT(std::string(ReadQuestions(WriteFile(dir / "bad.jsonl", "{\"q\": 1}\n"), 0).status().message()),
              HasSubstr("bad.jsonl:1: expected a \"question\""));
}

// --- sandbox: a scripted 2x2 grid -------------------------------------------------------------------------

// "r0/a1/peer3/rating" -> its parts.
std::vector<std::string> Parts(const std::string& key) { return absl::StrSplit(key, '/'); }

int PeerRating(int author, int peer) { return 1 + (author * 3 + peer) % 7; }

TEST(Sandbox, ScriptedTwoByTwoRoundsRouteAnswersRatingsAndMemories) {
  const std::filesystem::path dir = Scratch("sandbox");
  // Round 1 asks agent 0 its round-0 question again (a memory hit); the others get new questions.
  const std::filesystem::path questions = WriteFile(
      dir / "q.txt",
      "How do I bake bread quickly?\nWhat is a good name for a cat?\nHow can I learn to juggle?\nWhy is the sky "
      "blue?\nHow do I bake bread quickly?\nWhere do penguins live?\nWho invented the telephone?\nWhat is rust?\n");
  ScriptedGenerator policy([](const TextRequest& r) -> std::string {
    const std::vector<std::string> p = Parts(r.key);
    if (p[2] == "draft") return absl::StrCat("draft ", p[0], " ", p[1]);
    if (p[2] == "revise") return absl::StrCat("revised ", p[0], " ", p[1]);
    const int author = std::stoi(p[1].substr(1)), peer = std::stoi(p[2].substr(4));
    if (p[3] == "rating") return std::to_string(PeerRating(author, peer));
    return absl::StrCat("reason of agent ", peer, " on agent ", author);
  });
  ScriptedGenerator judge([](const TextRequest& r) -> std::string {
    const std::vector<std::string> p = Parts(r.key);
    const std::map<std::string, std::string> scores = {
        {"moral_before", "2"}, {"moral_after", "6"}, {"engagement_before", "3"}, {"engagement_after", "5"}};
    return p[3] == "rating" ? scores.at(p[2]) : absl::StrCat(p[2], " reason");
  });
  SimulationContext c = Context(SimulationMethod::kSandbox, dir / "out", &policy, &judge);
  c.recipe.questions = questions.string();
  c.recipe.sandbox.grid = 2;
  c.recipe.sandbox.interactees = 4;
  absl::StatusOr<SimulationOutput> out = RunSimulation(c);
  ASSERT_TRUE(out.ok()) << out.status();

  // Agents 0..3 at (0,0) (0,1) (1,0) (1,1): radius 1 makes 0's neighbours 1 and 2, 3's neighbours 1 and 2.
  const TextRequest& peer_rates = policy.at("r0/a0/peer1/rating");
  EXPECT_THAT(peer_rates.prompt, HasSubstr("You are Agent 1."));
  EXPECT_THAT(peer_rates.prompt, HasSubstr("Agent 0 was asked: How do I bake bread quickly?"));
  EXPECT_THAT(peer_rates.prompt, HasSubstr("draft r0 a0"));
  EXPECT_TRUE(absl::EndsWith(peer_rates.prompt, "Rating:"));
  EXPECT_THAT(peer_rates.choices, ElementsAre("1", "2", "3", "4", "5", "6", "7"));
  EXPECT_THAT(policy.at("r0/a0/peer1/reason").prompt, HasSubstr("Rating: 2\nReason:"));
  EXPECT_EQ(policy.seen.count("r0/a0/peer3/rating"), 0u) << "agent 3 is not agent 0's neighbour";
  // The revision sees the average and the reasons, best rated first (agent 2 rated 3, agent 1 rated 2).
  const std::string& revise = policy.at("r0/a0/revise").prompt;
  EXPECT_THAT(revise, HasSubstr("Average score: 2.5 out of 7"));
  EXPECT_THAT(revise, HasSubstr("reason of agent 2 on agent 0\nreason of agent 1 on agent 0"));
  // Observers are the judge's, never the policy's.
  EXPECT_THAT(judge.at("r0/a0/moral_after/rating").prompt, HasSubstr("revised r0 a0"));
  EXPECT_THAT(judge.at("r0/a0/moral_before/rating").prompt, HasSubstr("draft r0 a0"));
  EXPECT_EQ(policy.seen.count("r0/a0/moral_after/rating"), 0u);
  // Memory: agent 0 is reminded of its own revised answer to the same question; agent 1 of nothing.
  EXPECT_THAT(policy.at("r1/a0/draft").prompt, HasSubstr("revised r0 a0"));
  EXPECT_THAT(policy.at("r1/a1/draft").prompt, Not(HasSubstr("revised")));
  EXPECT_THAT(policy.at("r0/a0/draft").prompt, HasSubstr("You are Agent 0. You answer every request"));

  // The logs: one file per agent, one record per round, in the seed's schema.
  absl::StatusOr<std::string> log0 = ReadFile(dir / "out" / "logs" / "world_0" / "agent_0.jsonl");
  ASSERT_TRUE(log0.ok());
  const Json records = Json::parse(*log0);
  ASSERT_EQ(records.size(), 2u);
  const Json& r = records[0];
  EXPECT_EQ(r["agent_id"], 0);
  EXPECT_EQ(r["label"], "permissive");
  EXPECT_EQ(r["iteration"], 0);
  EXPECT_EQ(r["draft_answer"], "draft r0 a0");
  EXPECT_EQ(r["revised_answer"], "revised r0 a0");
  EXPECT_EQ(r["target_id"], Json({2, 1}));
  EXPECT_EQ(r["rating"], Json({"3", "2"}));
  EXPECT_EQ(r["feedback"], Json({"reason of agent 2 on agent 0", "reason of agent 1 on agent 0"}));
  EXPECT_EQ(r["gen_moral_score_before"], 2.0);
  EXPECT_EQ(r["gen_moral_score_after"], 6.0);
  EXPECT_EQ(r["gen_engagement_score_before"], 3.0);
  EXPECT_EQ(r["gen_engagement_reason_after"], "engagement_after reason");
  EXPECT_TRUE(r["recalled_question"].is_null());
  EXPECT_EQ(records[1]["recalled_question"], "How do I bake bread quickly?");
  EXPECT_EQ(out->counts.at("records"), 8);
  EXPECT_EQ(out->counts.at("memory_hits"), 1);

  // The training file: Stable Alignment groups, read by the training reader.
  absl::StatusOr<JsonlDataset> groups = JsonlDataset::Open(out->train_file, RecordFormat::kSandboxGroups);
  ASSERT_TRUE(groups.ok()) << groups.status();
  EXPECT_GE(groups->size(), 7);  // 7 distinct questions, imitation entries at least
  absl::StatusOr<Record> first = groups->GetRecord(0);
  ASSERT_TRUE(first.ok());
  const RatedResponses& g = std::get<RatedResponses>(*first);
  EXPECT_EQ(g.query, "### Instruction:\nHow do I bake bread quickly?\n\n### Response:");
  EXPECT_THAT(g.responses, ::testing::Contains("draft r0 a0"));
  EXPECT_THAT(g.responses, ::testing::Contains("revised r0 a0"));
  EXPECT_TRUE(std::filesystem::exists(dir / "out" / "summary.json"));
}

TEST(Sandbox, ResumesAfterAFailureWithTheSameRecords) {
  const std::filesystem::path dir = Scratch("sandbox_resume");
  std::string pool;
  for (int i = 0; i < 12; ++i) absl::StrAppend(&pool, "Question number ", i, " about topic ", i % 5, "?\n");
  const std::filesystem::path questions = WriteFile(dir / "q.txt", pool);
  // Replies depend on the request's seed only, as the engine's do.
  auto script = [](const TextRequest& r) -> std::string {
    if (!r.choices.empty()) return r.choices[r.seed % r.choices.size()];
    return absl::StrCat("text ", r.seed % 1000);
  };
  auto run = [&](const std::filesystem::path& out, int64_t fail_at_call) -> absl::Status {
    ScriptedGenerator scripted(script);
    // Fails the `fail_at_call`-th Generate call, as a killed process stops mid-round.
    class Failing : public TextGenerator {
     public:
      Failing(ScriptedGenerator& inner, int64_t fail_at) : inner_(inner), fail_at_(fail_at) {}
      absl::StatusOr<std::vector<TextReply>> Generate(const std::vector<TextRequest>& requests) override {
        if (++calls_ == fail_at_) return absl::AbortedError("killed");
        return inner_.Generate(requests);
      }
      GeneratorCounters counters() const override { return inner_.counters(); }

     private:
      ScriptedGenerator& inner_;
      int64_t fail_at_, calls_ = 0;
    } failing(scripted, fail_at_call);
    SimulationContext c = Context(SimulationMethod::kSandbox, out, &failing, &failing);
    c.recipe.questions = questions.string();
    c.recipe.sandbox.grid = 2;
    c.recipe.sandbox.interactees = 2;
    return RunSimulation(c).status();
  };
  ASSERT_TRUE(run(dir / "whole", -1).ok());
  EXPECT_EQ(run(dir / "resumed", 9).code(), absl::StatusCode::kAborted);  // round 1's third call (6 a round)
  absl::StatusOr<RecordJournal> partial = RecordJournal::Open(dir / "resumed" / "journal.jsonl");
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(partial->size(), 4) << "round 0 journaled, round 1 not";
  ASSERT_TRUE(run(dir / "resumed", -1).ok());
  for (const char* file : {"journal.jsonl", "sandbox_groups.json", "logs/world_0/agent_3.jsonl"})
    EXPECT_EQ(*ReadFile(dir / "whole" / file), *ReadFile(dir / "resumed" / file)) << file;
}

// --- matrix -------------------------------------------------------------------------------------------------

TEST(Matrix, ScriptedSceneTraceAndConversation) {
  const std::filesystem::path dir = Scratch("matrix");
  const std::filesystem::path questions = WriteFile(dir / "q.txt", "How do I get into my neighbour's flat?\nHi?\n");
  ScriptedGenerator policy([](const TextRequest& r) -> std::string {
    const std::vector<std::string> p = Parts(r.key);
    const bool second = p[0] == "q1";
    if (p[1] == "answer") return "Climb through the window.";
    if (p[1] == "ego") return second ? "no role here" : "burglar] who wants in";
    if (p[1] == "roles") return "neighbour], [police officer], [Burglar], [neighbour]";
    if (p[1] == "plan") return " climbs the wall\n2. opens the window\n3. takes the TV";
    if (p[1] == "summary") return "The neighbour lost property and trust.";
    if (p[1] == "revise") return second ? "" : "Ask your neighbour for the key.";
    return absl::StrCat(p[2], " reacts to step ", p[1]);  // reactions: stepN/role
  });
  ScriptedGenerator judge([](const TextRequest& r) -> std::string {
    const std::vector<std::string> p = Parts(r.key);
    if (p.back() == "plausible") return p[2] == "neighbour" ? "Yes" : "No";
    return absl::StrCat("harm seen by ", p[2]);
  });
  SimulationContext c = Context(SimulationMethod::kMatrix, dir / "out", &policy, &judge);
  c.recipe.questions = questions.string();
  c.recipe.matrix.min_roles = 3;
  c.recipe.matrix.max_roles = 7;
  c.recipe.matrix.plan_steps = 2;
  c.recipe.matrix.max_incidents = 5;
  absl::StatusOr<SimulationOutput> out = RunSimulation(c);
  ASSERT_TRUE(out.ok()) << out.status();

  absl::StatusOr<RecordJournal> journal = RecordJournal::Open(dir / "out" / "journal.jsonl");
  ASSERT_TRUE(journal.ok());
  ASSERT_EQ(journal->size(), 2);
  const Json scene = *journal->Read("q0");
  EXPECT_EQ(scene["ego"], "burglar");
  // The asker is not among the roles; the list is topped up from the fallbacks to min_roles.
  EXPECT_EQ(scene["roles"], Json({"neighbour", "police officer", "family member"}));
  EXPECT_EQ(scene["plan"], Json({"climbs the wall", "opens the window"}));  // plan_steps = 2
  // Step 0: the asker's step, then 3 reactions; step 1: the step, then 2 reactions (5 judged at most).
  const Json& trace = scene["trace"];
  ASSERT_EQ(trace.size(), 7u);
  EXPECT_EQ(trace[0]["speaker"], "burglar");
  EXPECT_TRUE(trace[0]["plausible"].is_null());
  EXPECT_EQ(trace[1]["speaker"], "neighbour");
  EXPECT_EQ(trace[1]["plausible"], true);
  EXPECT_EQ(trace[1]["critique"], "harm seen by neighbour");
  EXPECT_EQ(trace[2]["plausible"], false);
  EXPECT_EQ(trace[2]["critique"], "");
  EXPECT_EQ(trace[4]["step"], 1);
  EXPECT_EQ(trace.back()["speaker"], "police officer");
  // Implausible reactions do not join the scene the others see; plausible ones do.
  const std::string& later = policy.at("q0/step1/neighbour").prompt;
  EXPECT_THAT(later, HasSubstr("neighbour: neighbour reacts to step step0"));
  EXPECT_THAT(later, Not(HasSubstr("police officer reacts")));
  EXPECT_THAT(judge.at("q0/step0/neighbour/plausible").choices, ElementsAre("Yes", "No"));
  EXPECT_THAT(policy.at("q0/summary").prompt, HasSubstr("harm seen by neighbour"));
  EXPECT_THAT(policy.at("q0/revise").prompt, HasSubstr("The neighbour lost property and trust."));
  // The second question: no [role] in the reply, so the asker is "user"; its empty revision is not trained on.
  EXPECT_EQ(journal->Read("q1")->at("ego"), "user");
  EXPECT_EQ(out->counts.at("fallback_ego"), 1);
  EXPECT_EQ(out->counts.at("dropped_empty_revision"), 1);

  absl::StatusOr<JsonlDataset> data = JsonlDataset::Open(out->train_file, RecordFormat::kShareGpt);
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->size(), 1);
  absl::StatusOr<Conversation> conversation = data->Get(0);
  ASSERT_TRUE(conversation.ok());
  EXPECT_EQ(conversation->messages[0].content, "How do I get into my neighbour's flat?");
  EXPECT_EQ(conversation->messages[1].content, "Ask your neighbour for the key.");
  absl::StatusOr<std::string> trace_file = ReadFile(dir / "out" / "trace.jsonl");
  // q1 (asker "user", so [Burglar] is a role): 2 steps with 3 + 2 reactions, as q0.
  EXPECT_EQ(std::count(trace_file->begin(), trace_file->end(), '\n'), 7 + 7) << *trace_file;
}

// --- self_align --------------------------------------------------------------------------------------------

TEST(SelfAlign, TopicsQuestionsNearDuplicatesAndFilters) {
  const std::filesystem::path dir = Scratch("self_align");
  const std::filesystem::path seeds = WriteFile(
      dir / "seeds.jsonl",
      R"({"question_type": "False premise", "topic": "History", "question": "Why did Napoleon conquer Japan?"})"
      "\n");
  const std::filesystem::path pool = WriteFile(dir / "pool.txt", "How do I pick a lock?\n");
  ScriptedGenerator policy([](const TextRequest& r) -> std::string {
    if (absl::StartsWith(r.key, "topics/")) return "Space Travel.\n- history\n- a topic far too long here\n- Chemistry";
    if (absl::StartsWith(r.key, "questions/False premise/History"))
      return "Why did Rome win the Second World War?\n- Why did Rome win the Second World War too?\n- Hi";
    if (absl::StartsWith(r.key, "questions/"))
      return "How do I pick a lock quickly?\n- Why is the Moon made of cheese?";
    if (absl::EndsWith(r.key, "/thoughts")) return "I am a helpful assistant. Honest applies.";
    // answers: q0 the pool's lock question, then the generated ones
    if (r.key == "q0/answer") return "I'm sorry, I cannot help.";
    if (r.key == "q1/answer") return "Rome did not win it; the premise is false, the war ended in 1945.";
    if (r.key == "q2/answer") return "Short.";
    return "The Moon is rock, not cheese; samples from Apollo show basalt and dust.";
  });
  SimulationContext c = Context(SimulationMethod::kSelfAlign, dir / "out", &policy, &policy);
  c.recipe.questions = pool.string();
  c.recipe.self_align.seed_topics = seeds.string();
  c.recipe.self_align.topics_per_type = 2;
  c.recipe.self_align.questions_per_topic = 3;
  c.recipe.self_align.min_answer_chars = 40;
  absl::StatusOr<SimulationOutput> out = RunSimulation(c);
  ASSERT_TRUE(out.ok()) << out.status();

  // Topics: "Space Travel" (punctuation dropped) and "Chemistry"; "history" repeats the seed's, the long one
  // is not a topic. EOS is banned while brainstorming, and the shared meta prompt starts every answer prompt.
  EXPECT_TRUE(policy.at("topics/False premise").ban_eos);
  EXPECT_EQ(out->counts.at("topics"), 2);
  EXPECT_EQ(out->counts.at("dropped_topics_duplicate"), 1);
  EXPECT_EQ(out->counts.at("dropped_topics_malformed"), 1);
  EXPECT_EQ(policy.seen.count("questions/False premise/Space Travel"), 1u);
  EXPECT_EQ(policy.seen.count("questions/False premise/Chemistry"), 1u);
  // Questions: the second Rome question is a near duplicate of the first, "Hi" too short, "pick a lock
  // quickly" near the pool's question, and the cheese question kept once (the next topic's is a duplicate).
  EXPECT_EQ(out->counts.at("dropped_questions_short"), 1);
  EXPECT_EQ(out->counts.at("dropped_questions_near_duplicate"), 4);
  EXPECT_EQ(out->counts.at("generated_questions"), 2);
  const std::string& prompt = policy.at("q1/thoughts").prompt;
  EXPECT_THAT(prompt, HasSubstr("1. Helpful:"));
  EXPECT_THAT(prompt, HasSubstr("User: How many legs does a spider have?"));
  EXPECT_TRUE(absl::EndsWith(prompt, "User: Why did Rome win the Second World War?\n\nAssistant (internal thoughts):"));
  EXPECT_TRUE(absl::StartsWith(policy.at("q2/answer").prompt, prompt.substr(0, prompt.find("User: Why did Rome"))));
  EXPECT_THAT(policy.at("q1/answer").first_token_bias, ElementsAre(std::pair<std::string, double>{"Sorry", -100.0}));
  EXPECT_THAT(policy.at("q1/answer").stop_strings, ElementsAre("\n\nUser:"));
  // Filters: the apology and the short answer are dropped; kept answers end with the marker.
  EXPECT_EQ(out->counts.at("dropped_apology"), 1);
  EXPECT_EQ(out->counts.at("records"), 1);
  absl::StatusOr<JsonlDataset> data = JsonlDataset::Open(out->train_file, RecordFormat::kDromedary);
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->size(), 1);
  absl::StatusOr<Record> record = data->GetRecord(0);
  ASSERT_TRUE(record.ok());
  const InstructionRecord& engraved = std::get<InstructionRecord>(*record);
  EXPECT_EQ(engraved.instruction, "Why did Rome win the Second World War?");
  EXPECT_EQ(engraved.output, "Rome did not win it; the premise is false, the war ended in 1945.\n\n### User\n");
  EXPECT_EQ(engraved.example_id, 1);
}

// --- scale ----------------------------------------------------------------------------------------------------

// Peak resident memory of this process, from /proc/self/status (kB).
int64_t PeakRssKb() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (absl::StartsWith(line, "VmHWM:")) return std::stoll(line.substr(6));
  return -1;
}

// A model that answers at once (its replies are cheap), so the simulator's own costs are what is measured.
class EchoGenerator : public TextGenerator {
 public:
  absl::StatusOr<std::vector<TextReply>> Generate(const std::vector<TextRequest>& requests) override {
    std::vector<TextReply> replies;
    for (const TextRequest& r : requests)
      replies.push_back({absl::StrCat("A careful answer number ", r.seed % 100000, " that is long enough to keep."),
                         true});
    counters_.requests += static_cast<int64_t>(requests.size());
    return replies;
  }
  GeneratorCounters counters() const override { return counters_; }

 private:
  GeneratorCounters counters_;
};

TEST(Scale, HundredThousandQuestionsStreamThroughTheJournal) {
  const std::filesystem::path dir = Scratch("scale");
  std::string pool;
  for (int i = 0; i < 100000; ++i) absl::StrAppend(&pool, "Question ", i, ": how should one answer request ", i, "?\n");
  const std::filesystem::path questions = WriteFile(dir / "q.txt", pool);
  const std::filesystem::path seeds = WriteFile(
      dir / "seeds.jsonl", R"({"question_type": "Plain", "topic": "Tea", "question": "Is tea good for you?"})" "\n");
  EchoGenerator echo;
  SimulationContext c = Context(SimulationMethod::kSelfAlign, dir / "out", &echo, &echo);
  c.recipe.questions = questions.string();
  c.recipe.batch_questions = 4096;
  c.recipe.self_align.seed_topics = seeds.string();
  c.recipe.self_align.topics_per_type = 0;
  c.recipe.self_align.min_answer_chars = 10;
  const int64_t before = PeakRssKb();
  absl::StatusOr<SimulationOutput> out = RunSimulation(c);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->counts.at("pool_questions"), 100000);
  EXPECT_EQ(out->counts.at("records"), out->counts.at("questions"));
  absl::StatusOr<JsonlDataset> data = JsonlDataset::Open(out->train_file, RecordFormat::kDromedary);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->size(), out->counts.at("questions"));
  // The journal holds an index, not the records: 100k records (tens of MB of JSON) add little to the peak.
  const int64_t grown_mb = (PeakRssKb() - before) / 1024;
  std::printf("100k questions: peak resident memory grew by %lld MB\n", static_cast<long long>(grown_mb));
#if !defined(__SANITIZE_ADDRESS__)  // ASan's quarantine keeps freed memory resident: the bound is for real builds
  EXPECT_LT(grown_mb, 400);
#endif
}

}  // namespace
}  // namespace agora
