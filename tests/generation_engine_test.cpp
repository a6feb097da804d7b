// The generation engine (models/generation_engine.h) on the random llama3_gqa model: transformers' greedy tokens
// for many requests of different lengths decoded together (several sharing a long prefix), with and without the
// prefix cache, with the repetition penalty and the n-gram ban; a request's tokens alone and among 31 others;
// stop strings split across tokens; constrained choices; logit bias; seeds; refused requests.
#include <cstdlib>
#include <optional>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <functional>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "models/checkpoint.h"
#include "models/generation_engine.h"
#include "models/lora.h"
#include "tests/fixture_dir.h"
#include "tests/test_util.h"

namespace agora {
namespace {

using ::testing::HasSubstr;
using testing::FixtureDir;

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = LoadModel(FixtureDir("AGORA_MODEL_FIXTURES") / "llama3_gqa", {at::kFloat, at::kCPU});
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    model_ = loaded->model;
  }

  // Every request's result, by id, from one engine run.
  std::map<std::string, GenerationResult> RunAll(const std::vector<GenerationRequest>& requests,
                                                 EngineOptions options = {}) {
    GenerationEngine engine(model_, std::move(options));
    for (const GenerationRequest& r : requests) {
      const absl::Status status = engine.Submit(r);
      EXPECT_TRUE(status.ok()) << status;
    }
    std::map<std::string, GenerationResult> results;
    engine.Run([&results](GenerationResult r) { results[r.id] = std::move(r); });
    stats_ = engine.stats();
    return results;
  }

  // Random prompts (BOS first) of the given lengths.
  std::vector<std::vector<int64_t>> RandomPrompts(const std::vector<int64_t>& lengths, uint64_t seed) const {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    std::vector<std::vector<int64_t>> prompts;
    for (int64_t n : lengths) {
      const at::Tensor ids = at::randint(3, model_->config().vocab_size, {n - 1}, gen, at::kLong);
      std::vector<int64_t> p{1};
      for (int64_t i = 0; i < n - 1; ++i) p.push_back(ids[i].item<int64_t>());
      prompts.push_back(p);
    }
    return prompts;
  }

  LlamaForCausalLM model_{nullptr};
  EngineStats stats_;
};

// The oracle's requests (transformers' greedy tokens, one prompt at a time).
struct OracleCase {
  GenerationRequest request;
  std::vector<int64_t> want;
};
std::vector<OracleCase> OracleCases() {
  std::ifstream in(std::getenv("AGORA_ENGINE_FIXTURES"));
  EXPECT_TRUE(in) << "AGORA_ENGINE_FIXTURES";
  const nlohmann::json fixture = nlohmann::json::parse(in);
  std::vector<OracleCase> cases;
  for (const nlohmann::json& c : fixture["cases"]) {
    OracleCase o;
    o.request.id = std::to_string(cases.size());
    o.request.prompt = c["prompt"].get<std::vector<int64_t>>();
    o.request.sampling.max_new_tokens = fixture["max_new_tokens"].get<int64_t>();
    o.request.sampling.stop_ids = fixture["stop_ids"].get<std::vector<int64_t>>();
    o.request.sampling.repetition_penalty = c.value("repetition_penalty", 1.0);
    o.request.sampling.no_repeat_ngram_size = c.value("no_repeat_ngram_size", 0);
    o.want = c["continuation"].get<std::vector<int64_t>>();
    cases.push_back(o);
  }
  return cases;
}

// Few slots, so sequences leave and waiting ones join while others decode; small prefix blocks, so the shared
// prefix is restored from the cache for the later requests.
void ExpectTransformersTokens(LlamaForCausalLM model) {
  const std::vector<OracleCase> cases = OracleCases();
  for (int64_t cache_blocks : {0, 64}) {
    GenerationEngine engine(model, {.max_sequences = 4, .prefill_chunk = 16,  // the 71-token prompt: five chunks
                                    .prefix_block = 8, .prefix_cache_blocks = cache_blocks});
    for (const OracleCase& c : cases) ASSERT_TRUE(engine.Submit(c.request).ok());
    std::map<std::string, std::vector<int64_t>> got;
    engine.Run([&got](GenerationResult r) { got[r.id] = r.tokens; });
    ASSERT_EQ(got.size(), cases.size());
    for (const OracleCase& c : cases)
      EXPECT_EQ(got.at(c.request.id), c.want) << "case " << c.request.id << ", cache blocks " << cache_blocks;
    // Three of the four requests sharing the 41-token prefix find its 5 whole blocks; the repeated prompts of the
    // processor cases find theirs too.
    if (cache_blocks == 0) EXPECT_EQ(engine.stats().cached_prompt_tokens, 0);
    if (cache_blocks > 0) EXPECT_GE(engine.stats().cached_prompt_tokens, 3 * 40);
  }
}

TEST_F(EngineTest, ManyRequestsMatchTransformersWithAndWithoutThePrefixCache) { ExpectTransformersTokens(model_); }

// The CUDA path through the same code: fp32 (TF32 is off in LibTorch) gives transformers' tokens; bf16 runs every
// request to its end and keeps a constrained answer inside its choices.
TEST(EngineCuda, Fp32MatchesTransformersAndBf16Runs) {
  AGORA_SKIP_WITHOUT_CUDA();
  const std::filesystem::path dir = FixtureDir("AGORA_MODEL_FIXTURES") / "llama3_gqa";
  auto fp32 = LoadModel(dir, {at::kFloat, at::Device(at::kCUDA, 0)});
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  ExpectTransformersTokens(fp32->model);
  auto bf16 = LoadModel(dir, {at::kBFloat16, at::Device(at::kCUDA, 0)});
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  GenerationEngine engine(bf16->model, {.max_sequences = 4, .prefix_block = 8});
  std::vector<OracleCase> cases = OracleCases();
  cases[0].request.sampling.choices = {{17}, {40, 41}};
  for (const OracleCase& c : cases) ASSERT_TRUE(engine.Submit(c.request).ok());
  int finished = 0;
  engine.Run([&](GenerationResult r) {
    ++finished;
    if (r.id == "0") EXPECT_TRUE(r.tokens == std::vector<int64_t>{17} || r.tokens == (std::vector<int64_t>{40, 41}));
    else EXPECT_TRUE(r.finish_reason == "length" || r.tokens.back() == 2) << r.id;
  });
  EXPECT_EQ(finished, static_cast<int>(cases.size()));
}

TEST_F(EngineTest, ARequestsTokensAreTheSameAloneAndAmongThirtyOneOthers) {
  std::vector<int64_t> lengths;
  for (int i = 0; i < 32; ++i) lengths.push_back(2 + (i * 7) % 41);
  const auto prompts = RandomPrompts(lengths, 5);
  for (double temperature : {0.0, 0.8}) {
    std::vector<GenerationRequest> all;
    for (size_t i = 0; i < prompts.size(); ++i) {
      GenerationRequest r{std::to_string(i), prompts[i], {}};
      r.sampling.max_new_tokens = 6 + static_cast<int64_t>(i % 9);  // they finish at different steps
      r.sampling.temperature = temperature;
      r.sampling.seed = 100 + i;
      all.push_back(r);
    }
    const auto together = RunAll(all, {.max_sequences = 32});
    for (size_t i : {size_t{0}, size_t{13}, size_t{31}}) {
      const auto alone = RunAll({all[i]});
      EXPECT_EQ(alone.at(all[i].id).tokens, together.at(all[i].id).tokens) << i << " temperature " << temperature;
    }
  }
}

// A detokenizer of two characters per token, so a stop string can straddle two tokens.
std::string TwoChars(const std::vector<int64_t>& ids) {
  std::string text;
  for (int64_t id : ids) text += {static_cast<char>('a' + id % 26), static_cast<char>('a' + (id / 26) % 26)};
  return text;
}

TEST_F(EngineTest, StopStringsSplitAcrossTokensEndTheOutputAndAreTrimmed) {
  EngineOptions options;
  options.detokenize = TwoChars;
  GenerationRequest r{"free", RandomPrompts({9}, 3)[0], {}};
  r.sampling.max_new_tokens = 12;
  const GenerationResult free_run = RunAll({r}, options).at("free");
  ASSERT_EQ(free_run.tokens.size(), 12u);
  // The second character of token 4 and the first of token 5.
  const std::string stop = free_run.text.substr(2 * 4 + 1, 2);
  ASSERT_EQ(free_run.text.find(stop), 2u * 4 + 1) << "the stop string must not occur earlier";
  r.id = "stopped";
  r.sampling.stop_strings = {"zzzzzzzz", stop};
  const GenerationResult stopped = RunAll({r}, options).at("stopped");
  EXPECT_EQ(stopped.finish_reason, "stop");
  EXPECT_EQ(stopped.tokens, std::vector<int64_t>(free_run.tokens.begin(), free_run.tokens.begin() + 6));
  EXPECT_EQ(stopped.text, free_run.text.substr(0, 2 * 4 + 1));
  EXPECT_EQ(free_run.finish_reason, "length");
}

TEST_F(EngineTest, ConstrainedChoicesAlwaysGiveAMember) {
  const std::vector<std::vector<int64_t>> choices = {{17}, {40, 41}, {40, 42, 43}, {99, 98, 97, 96}};
  const std::set<std::vector<int64_t>> members(choices.begin(), choices.end());
  std::vector<GenerationRequest> requests;
  const auto prompts = RandomPrompts({3, 8, 15, 30}, 11);
  for (int i = 0; i < 40; ++i) {
    GenerationRequest r{std::to_string(i), prompts[i % 4], {}};
    r.sampling.choices = choices;
    r.sampling.temperature = i < 4 ? 0.0 : 1.5;  // greedy and hot sampling both stay inside the set
    r.sampling.seed = i;
    requests.push_back(r);
  }
  std::set<std::vector<int64_t>> seen;
  for (const auto& [id, result] : RunAll(requests, {.max_sequences = 8})) {
    EXPECT_TRUE(members.count(result.tokens)) << id << ": " << ::testing::PrintToString(result.tokens);
    EXPECT_EQ(result.finish_reason, "stop") << id;
    seen.insert(result.tokens);
  }
  EXPECT_GE(seen.size(), 3u) << "hot sampling reaches several members";
}

TEST_F(EngineTest, AChoiceThatCanBeExtendedEndsAtAStopId) {
  // "7" and "7 1" (e.g. ratings 7 and 71): after 7 either the stop id or 1 may follow.
  GenerationRequest r{"r", RandomPrompts({6}, 2)[0], {}};
  r.sampling.choices = {{7}, {7, 1}};
  r.sampling.stop_ids = {2};
  r.sampling.logit_bias = {{2, 100.0}};  // the model would rather stop
  const GenerationResult result = RunAll({r}).at("r");
  EXPECT_EQ(result.tokens, (std::vector<int64_t>{7, 2}));
  r.sampling.logit_bias = {{1, 100.0}};
  EXPECT_EQ(RunAll({r}).at("r").tokens, (std::vector<int64_t>{7, 1}));
}

TEST_F(EngineTest, LogitBiasSeedsAndPenaltiesChangeTheOutputAsSpecified) {
  GenerationRequest r{"r", RandomPrompts({10}, 8)[0], {}};
  r.sampling.max_new_tokens = 8;
  const auto greedy = RunAll({r}).at("r").tokens;
  r.sampling.logit_bias = {{123, 1e4}};
  EXPECT_EQ(RunAll({r}).at("r").tokens, std::vector<int64_t>(8, 123)) << "a huge bias wins every step";
  r.sampling.logit_bias = {};
  // transformers' rule: a seen token's positive logit is divided by the penalty, a negative one multiplied. At 1e9
  // every seen token (prompt or output) loses to some unseen one with a positive logit.
  r.sampling.repetition_penalty = 1e9;
  const auto penalised = RunAll({r}).at("r").tokens;
  std::set<int64_t> seen(r.prompt.begin(), r.prompt.end());
  for (int64_t t : penalised) EXPECT_TRUE(seen.insert(t).second) << t << " repeats";
  r.sampling = {};
  r.sampling.max_new_tokens = 8;
  r.sampling.temperature = 1.0;
  r.sampling.seed = 1;
  const auto a = RunAll({r}).at("r").tokens;
  EXPECT_EQ(RunAll({r}).at("r").tokens, a) << "a seed reproduces its tokens";
  r.sampling.seed = 2;
  EXPECT_NE(RunAll({r}).at("r").tokens, a);
  EXPECT_NE(a, greedy);
}

// PEFT's adapter on llama2_mha, unmerged: requests for the base model and for the adapter, decoded in the same
// steps and sharing prompts (the prefix cache must keep their keys/values apart), give what each gives alone.
TEST(EngineWithAdapter, BaseAndAdapterRequestsDecodedTogether) {
  auto loaded = LoadModel(FixtureDir("AGORA_MODEL_FIXTURES") / "llama2_mha", {at::kFloat, at::kCPU});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  LlamaForCausalLM model = loaded->model;
  ASSERT_TRUE(LoadPeftAdapter(model, FixtureDir("AGORA_LORA_FIXTURES") / "peft_all").ok());
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(4);
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 16; ++i) {
    GenerationRequest r;
    r.id = std::to_string(i);
    const at::Tensor ids = at::randint(3, model->config().vocab_size, {20 + (i / 2) % 3 * 9}, gen, at::kLong);
    r.prompt = {1};
    for (int64_t t = 0; t < ids.numel(); ++t) r.prompt.push_back(ids[t].item<int64_t>());
    if (i % 4 != 0) r.prompt = requests.back().prompt;  // each prompt twice with the adapter, twice without
    r.sampling.max_new_tokens = 10 + i % 4;
    r.use_adapter = i % 2 == 0;
    requests.push_back(r);
  }
  auto run = [&model](const std::vector<GenerationRequest>& rs, bool adapters_off) {
    std::optional<LoraAdaptersDisabled> off;
    if (adapters_off) off.emplace(model);
    GenerationEngine engine(model, {.max_sequences = 4, .prefix_block = 8});
    for (GenerationRequest r : rs) {
      r.use_adapter = true;  // as the model is: adapters on or off for the whole run
      EXPECT_TRUE(engine.Submit(r).ok());
    }
    std::map<std::string, std::vector<int64_t>> out;
    engine.Run([&out](GenerationResult r) { out[r.id] = r.tokens; });
    return out;
  };
  GenerationEngine engine(model, {.max_sequences = 4, .prefix_block = 8});
  for (const GenerationRequest& r : requests) ASSERT_TRUE(engine.Submit(r).ok());
  std::map<std::string, std::vector<int64_t>> mixed;
  engine.Run([&mixed](GenerationResult r) { mixed[r.id] = r.tokens; });
  EXPECT_GT(engine.stats().cached_prompt_tokens, 0) << "the second request of each weights finds its prompt";
  const auto tuned = run(requests, false), base = run(requests, true);
  int differ = 0;
  for (const GenerationRequest& r : requests) {
    EXPECT_EQ(mixed.at(r.id), (r.use_adapter ? tuned : base).at(r.id)) << r.id;
    differ += tuned.at(r.id) != base.at(r.id);
  }
  EXPECT_GT(differ, 0) << "the adapter changes some answers, or this test shows nothing";
}

TEST_F(EngineTest, BadRequestsAreRefusedNamingThem) {
  GenerationEngine engine(model_, {});
  GenerationRequest r{"q7", {}, {}};
  EXPECT_THAT(std::string(engine.Submit(r).message()), HasSubstr("request 'q7': the prompt has no tokens"));
  r.prompt = {1, 2, 3};
  r.sampling.max_new_tokens = 1000;
  EXPECT_THAT(std::string(engine.Submit(r).message()), HasSubstr("exceeds max_position_embeddings (256)"));
  r.sampling.max_new_tokens = 4;
  r.sampling.stop_strings = {"x"};
  EXPECT_THAT(std::string(engine.Submit(r).message()), HasSubstr("stop strings need the engine's detokenizer"));
  r.sampling.stop_strings = {};
  r.prompt = {1, 100000};
  EXPECT_THAT(std::string(engine.Submit(r).message()), HasSubstr("token 100000 is outside the vocabulary"));
  r.prompt = {1};
  r.sampling.choices = {{5}, {}};
  EXPECT_THAT(std::string(engine.Submit(r).message()), HasSubstr("a choice has no tokens"));
  r.sampling.choices = {};
  // Sampling options a torch op would otherwise abort on (top_p 0 made `agora generate` crash).
  const std::pair<std::function<void(SamplingOptions&)>, std::string> bad[] = {
      {[](SamplingOptions& s) { s.temperature = -0.5; }, "temperature must be >= 0, got -0.5"},
      {[](SamplingOptions& s) { s.temperature = 0.7, s.top_p = 0; }, "top_p must be in (0, 1], got 0"},
      {[](SamplingOptions& s) { s.top_p = 1.5; }, "top_p must be in (0, 1], got 1.5"},
      {[](SamplingOptions& s) { s.top_k = -2; }, "top_k must be >= 0, got -2"},
      {[](SamplingOptions& s) { s.min_p = 2; }, "min_p must be in [0, 1], got 2"},
      {[](SamplingOptions& s) { s.repetition_penalty = 0; }, "repetition_penalty must be > 0, got 0"},
      {[](SamplingOptions& s) { s.no_repeat_ngram_size = -1; }, "no_repeat_ngram_size must be >= 0, got -1"}};
  for (const auto& [change, message] : bad) {
    GenerationRequest q{"q8", {1, 2}, {}};
    change(q.sampling);
    EXPECT_THAT(std::string(engine.Submit(q).message()), HasSubstr("request 'q8': " + message));
  }
}

}  // namespace
}  // namespace agora
