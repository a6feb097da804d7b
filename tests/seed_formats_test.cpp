// The seeds' data formats, from the bundled samples (assets/data/seeds) through the tiny model's sentencepiece
// tokenizer: each test prints the trained tokens of one record and checks the method's template and masking;
// malformed records name the file, line and field; and the sandbox conversion reproduces the bundled groups.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "data/load_tokenizer.h"
#include "data/record_tokenizer.h"
#include "data/sandbox_groups.h"
#include "data/training_data.h"
#include "util/read_file.h"

namespace agora {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = AGORA_SOURCE_DIR;
const fs::path kSeeds = kSource / "assets/data/seeds";

std::shared_ptr<const Tokenizer> TinyTokenizer() {
  auto tokenizer = LoadTokenizer(kSource / "assets/tiny-llama");
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return std::shared_ptr<const Tokenizer>(std::move(*tokenizer));
}

// The trained tokens as text, and the whole sequence with the trained part in [[...]], printed for the reader.
std::string Trained(const Tokenizer& tokenizer, const TokenizedSample& s) {
  std::vector<int32_t> ids;
  for (size_t t = 1; t < s.labels.size(); ++t)
    if (s.labels[t] != kIgnoreLabel) ids.push_back(s.labels[t]);
  return tokenizer.Decode(ids);
}

void Print(const Tokenizer& tokenizer, const std::string& what, const TokenizedGroup& group) {
  for (size_t k = 0; k < group.sequences.size(); ++k) {
    const TokenizedSample& s = group.sequences[k];
    std::string shown;
    bool open = false;
    for (size_t t = 0; t < s.ids.size(); ++t) {
      const bool trained = t > 0 && s.labels[t] != kIgnoreLabel;
      if (trained != open) shown += trained ? "[[" : "]]";
      open = trained;
      shown += "|" + tokenizer.IdToPiece(s.ids[t]);
    }
    if (open) shown += "]]";
    std::printf("%s, sequence %zu (score %g), %zu tokens, trained in [[ ]]:\n%s\n\n", what.c_str(), k,
                group.scores[k], s.ids.size(), shown.c_str());
  }
}

absl::StatusOr<Record> FirstRecord(const fs::path& path, RecordFormat format) {
  auto dataset = JsonlDataset::Open(path, format);
  if (!dataset.ok()) return dataset.status();
  return dataset->GetRecord(0);
}

// The untrained prefix length and that everything after it is trained.
size_t PromptTokens(const TokenizedSample& s) {
  size_t n = 0;
  while (n < s.labels.size() && s.labels[n] == kIgnoreLabel) ++n;
  for (size_t t = n; t < s.labels.size(); ++t) EXPECT_EQ(s.labels[t], s.ids[t]) << "token " << t;
  return n;
}

TEST(SeedFormats, StableAlignmentTrainsTheResponsesAfterTheQueryTokens) {
  auto tokenizer = TinyTokenizer();
  auto record = FirstRecord(kSeeds / "sandbox_groups/train.json", RecordFormat::kSandboxGroups);
  ASSERT_TRUE(record.ok()) << record.status();
  const RatedResponses& r = std::get<RatedResponses>(*record);
  ASSERT_GE(r.responses.size(), 3u);
  RecordTokenizerOptions options;
  options.responses_per_query = 3;
  auto group = TokenizeRecord(*record, options, *tokenizer, /*draw_seed=*/1);
  ASSERT_TRUE(group.ok()) << group.status();
  Print(*tokenizer, "sandbox_groups record 0", *group);
  ASSERT_EQ(group->sequences.size(), 3u);
  const size_t query_tokens = tokenizer->Encode(r.query, {.add_bos = true}).size();
  for (size_t k = 0; k < 3; ++k) {
    const TokenizedSample& s = group->sequences[k];
    EXPECT_EQ(PromptTokens(s), query_tokens) << "the first len(encode(query)) tokens are not trained";
    EXPECT_EQ(s.ids[0], *tokenizer->bos_id());
    EXPECT_NE(s.ids.back(), *tokenizer->eos_id()) << "no EOS unless data.append_eos";
    // The ids are one encode of query + response, as the original concatenates the strings.
    EXPECT_EQ(s.ids, tokenizer->Encode(r.query + r.responses[std::find(r.scores.begin(), r.scores.end(),
                                                                         group->scores[k]) - r.scores.begin()],
                                       {.add_bos = true}))
        << "(responses matched by score: the sample's first group has distinct scores)";
  }
  // K of n, drawn per epoch: another seed draws another subset of the same size, all from the record.
  options.append_eos = true;
  auto other = TokenizeRecord(*record, options, *tokenizer, /*draw_seed=*/99);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->sequences.size(), 3u);
  EXPECT_EQ(other->sequences[0].ids.back(), *tokenizer->eos_id());
  EXPECT_EQ(other->sequences[0].labels.back(), *tokenizer->eos_id()) << "an appended EOS is trained";
}

TEST(SeedFormats, MatrixShareGptTrainsAssistantTokensAndEosInTheVicunaTemplate) {
  auto tokenizer = TinyTokenizer();
  auto record = FirstRecord(kSeeds / "matrix/train.json", RecordFormat::kShareGpt);
  ASSERT_TRUE(record.ok()) << record.status();
  const Conversation& c = std::get<Conversation>(*record);
  ASSERT_EQ(c.messages.size(), 2u);
  EXPECT_EQ(c.messages[0].role, "user");  // "from": "human"
  EXPECT_EQ(c.messages[1].role, "assistant");  // "from": "gpt"
  RecordTokenizerOptions options;
  options.chat_template = ChatTemplateKind::kVicuna;
  auto group = TokenizeRecord(*record, options, *tokenizer, 0);
  ASSERT_TRUE(group.ok()) << group.status();
  Print(*tokenizer, "sharegpt record 0 (vicuna template)", *group);
  const TokenizedSample& s = group->sequences[0];
  EXPECT_EQ(s.ids.back(), *tokenizer->eos_id());
  EXPECT_EQ(s.labels.back(), *tokenizer->eos_id()) << "</s> is trained, as FastChat masks";
  EXPECT_EQ(Trained(*tokenizer, s), c.messages[1].content);
  const size_t prompt = PromptTokens(s);
  EXPECT_EQ(tokenizer->Decode(absl::MakeConstSpan(s.ids.data(), prompt)),
            "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
            "detailed, and polite answers to the user's questions. USER: " + c.messages[0].content + " ASSISTANT:");
}

TEST(SeedFormats, DromedaryTrainsTheOutputAfterTheMetaPromptWithoutEos) {
  auto tokenizer = TinyTokenizer();
  auto record = FirstRecord(kSeeds / "dromedary/train.json", RecordFormat::kDromedary);
  ASSERT_TRUE(record.ok()) << record.status();
  const InstructionRecord& r = std::get<InstructionRecord>(*record);
  RecordTokenizerOptions options;
  for (const char* name : {"meta_prompt_standard.txt", "meta_prompt_concise.txt"})
    options.meta_prompts.push_back(*ReadFile(kSeeds / "dromedary" / name));
  auto group = TokenizeRecord(*record, options, *tokenizer, 0);
  ASSERT_TRUE(group.ok()) << group.status();
  Print(*tokenizer, "dromedary record 0", *group);
  const TokenizedSample& s = group->sequences[0];
  const size_t prompt = PromptTokens(s);
  const std::string& meta = options.meta_prompts[r.example_id % 2];
  EXPECT_EQ(tokenizer->Decode(absl::MakeConstSpan(s.ids.data(), prompt)), meta + "\n" + r.instruction + "\n\n### Dromedary");
  EXPECT_EQ(Trained(*tokenizer, s), "\n" + r.output) << "the newline after ### Dromedary is the first target token";
  EXPECT_EQ(tokenizer->IdToPiece(s.ids[prompt]), "<0x0A>") << "no dummy-prefix ▁ before the target's newline";
  EXPECT_NE(s.ids.back(), *tokenizer->eos_id());

  // Left truncation of the source (BOS kept), right truncation of the target.
  options.max_source_len = 20;
  options.max_target_len = 7;
  auto cut = TokenizeRecord(*record, options, *tokenizer, 0);
  ASSERT_TRUE(cut.ok());
  const TokenizedSample& c = cut->sequences[0];
  ASSERT_EQ(c.ids.size(), 27u);
  EXPECT_EQ(cut->truncated, 2);
  EXPECT_EQ(c.ids[0], *tokenizer->bos_id());
  EXPECT_EQ(std::vector<int32_t>(c.ids.begin() + 1, c.ids.begin() + 20),
            std::vector<int32_t>(s.ids.begin() + (prompt - 19), s.ids.begin() + prompt))
      << "the source keeps its last tokens, ending with ### Dromedary";
  EXPECT_EQ(std::vector<int32_t>(c.ids.begin() + 20, c.ids.end()),
            std::vector<int32_t>(s.ids.begin() + prompt, s.ids.begin() + prompt + 7));
}

TEST(SeedFormats, PreferencePairsAreChosenThenRejectedThroughTheChatTemplate) {
  auto tokenizer = TinyTokenizer();
  auto record = FirstRecord(kSeeds / "preference/train.jsonl", RecordFormat::kPreference);
  ASSERT_TRUE(record.ok()) << record.status();
  const PreferencePair& p = std::get<PreferencePair>(*record);
  auto group = TokenizeRecord(*record, RecordTokenizerOptions{}, *tokenizer, 0);
  ASSERT_TRUE(group.ok()) << group.status();
  Print(*tokenizer, "preference record 0 (llama2 template)", *group);
  ASSERT_EQ(group->sequences.size(), 2u);
  EXPECT_EQ(group->scores, (std::vector<float>{1.0f, 0.0f}));
  for (int k = 0; k < 2; ++k) {
    auto expected = TokenizeConversation(
        ChatTemplateKind::kLlama2, Conversation{{{"user", p.prompt}, {"assistant", k == 0 ? p.chosen : p.rejected}}},
        *tokenizer);
    EXPECT_EQ(group->sequences[k].ids, expected->ids);
    EXPECT_EQ(group->sequences[k].labels, expected->labels);
  }
}

// --- malformed records ------------------------------------------------------------------------------------------

struct BadRecord {
  const char* name;
  RecordFormat format;
  const char* text;   // the file's content
  const char* error;  // after "PATH:LINE: "
  int line;
};

void PrintTo(const BadRecord& c, std::ostream* os) { *os << c.name; }

class MalformedSeedRecord : public ::testing::TestWithParam<BadRecord> {};

TEST_P(MalformedSeedRecord, NamesFileLineAndField) {
  const BadRecord& c = GetParam();
  const fs::path path = fs::temp_directory_path() / (std::string("agora_bad_") + c.name + ".json");
  std::ofstream(path) << c.text;
  auto dataset = JsonlDataset::Open(path, c.format);
  ASSERT_FALSE(dataset.ok());
  EXPECT_EQ(std::string(dataset.status().message()), path.string() + ":" + std::to_string(c.line) + ": " + c.error);
  fs::remove(path);
}

INSTANTIATE_TEST_SUITE_P(
    Objectives, MalformedSeedRecord,
    ::testing::Values(
        BadRecord{"ScoresMissing", RecordFormat::kSandboxGroups,
                  "[\n{\"query\": \"q\", \"responses\": [\"a\"], \"scores\": [1]},\n{\"query\": \"q\", \"responses\": [\"a\", \"b\"]}\n]",
                  "expected \"scores\" to be an array of 2 numbers, one per response", 3},
        BadRecord{"ScoreNotNumber", RecordFormat::kSandboxGroups,
                  "{\"query\": \"q\", \"responses\": [\"a\", \"b\"], \"scores\": [1, \"7\"]}",
                  "scores[1]: expected a finite number, got string", 1},
        BadRecord{"ResponseNotString", RecordFormat::kSandboxGroups,
                  "{\"query\": \"q\", \"responses\": [\"a\", 3], \"scores\": [1, 2]}",
                  "responses[1]: expected a string, got number", 1},
        BadRecord{"UnknownSpeaker", RecordFormat::kShareGpt,
                  "[{\"id\": \"x\", \"conversations\": [{\"from\": \"human\", \"value\": \"q\"}, {\"from\": \"bot\", \"value\": \"a\"}]}]",
                  "conversations[1]: unknown role \"bot\" (expected \"human\", \"gpt\" or \"system\")", 1},
        BadRecord{"OutputMissing", RecordFormat::kDromedary,
                  "[\n  {\"example_id\": 0, \"instruction\": \"i\", \"output\": \"o\"},\n\n  {\"example_id\": 1, \"instruction\": \"i\"}\n]",
                  "expected a string field \"output\"", 4},
        BadRecord{"ExampleIdNotInteger", RecordFormat::kDromedary,
                  "[{\"example_id\": \"1\", \"instruction\": \"i\", \"output\": \"o\"}]",
                  "expected \"example_id\" to be an integer when present, got string", 1},
        BadRecord{"RejectedMissing", RecordFormat::kPreference, "{\"prompt\": \"p\", \"chosen\": \"c\"}\n",
                  "expected a string field \"rejected\"", 1},
        BadRecord{"ArrayOfNonObjects", RecordFormat::kPreference, "[\n  1\n]", "expected a JSON object as array element, got '1'", 2},
        BadRecord{"UnclosedArray", RecordFormat::kPreference,
                  "[{\"prompt\": \"p\", \"chosen\": \"c\", \"rejected\": \"r\"}", "the file ends before the array's ']'", 1}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(SeedFormats, GroupFormatsRefusePacking) {
  TrainingDataOptions options;
  options.path = kSeeds / "preference/train.jsonl";
  options.packing = true;
  auto loader = TrainingDataLoader::Open(options, TinyTokenizer());
  ASSERT_FALSE(loader.ok());
  EXPECT_NE(std::string(loader.status().message()).find("need data.packing=false"), std::string::npos)
      << loader.status();
}

TEST(SeedFormats, LoaderKeepsEachGroupInOneRowWithItsScores) {
  TrainingDataOptions options;
  options.path = kSeeds / "sandbox_groups/train.json";
  options.packing = false;
  options.batch_rows = 3;
  options.max_seq_len = 256;
  auto loader = TrainingDataLoader::Open(options, TinyTokenizer());
  ASSERT_TRUE(loader.ok()) << loader.status();
  EXPECT_EQ((*loader)->format(), RecordFormat::kSandboxGroups);
  auto batch = (*loader)->Get({0, 0});
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->num_groups, 3);
  ASSERT_EQ(batch->sequence_group.size(), static_cast<size_t>(batch->num_samples));
  for (size_t s = 1; s < batch->sequence_group.size(); ++s)
    EXPECT_LE(batch->sequence_group[s] - batch->sequence_group[s - 1], 1) << "a group's sequences are contiguous";
  // Per row, one group; each sequence's tokens carry its number.
  for (int64_t r = 0; r < batch->rows; ++r) {
    std::set<int32_t> groups;
    for (int64_t t = 0; t < batch->seq_len; ++t) {
      const int32_t s = batch->sequence_id[r * batch->seq_len + t];
      if (s >= 0) groups.insert(batch->sequence_group[s]);
    }
    EXPECT_EQ(groups.size(), 1u) << "row " << r;
  }
}

// --- the sandbox conversion ---------------------------------------------------------------------------------------

std::vector<fs::path> LogFiles(const std::string& split) {
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(kSeeds / "sandbox_logs" / split))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

TEST(SandboxToGroups, ReproducesTheBundledGroupsByteForByte) {
  for (const std::string split : {"train", "valid"}) {
    SandboxConversionStats stats;
    auto groups = SandboxLogsToGroups(LogFiles(split), {0.3, 0.5, 0}, &stats);
    ASSERT_TRUE(groups.ok()) << groups.status();
    EXPECT_EQ(SandboxGroupsToJson(*groups), *ReadFile(kSeeds / "sandbox_groups" / (split + ".json")))
        << "regenerate with: agora data sandbox-to-groups --self_critic_ratio 0.3 --realignment_ratio 0.5 --out "
           "assets/data/seeds/sandbox_groups/" << split << ".json assets/data/seeds/sandbox_logs/" << split;
  }
}

TEST(SandboxToGroups, FollowsStableAlignmentsConstructionRules) {
  const fs::path dir = fs::temp_directory_path() / "agora_sandbox_rules/world_x";
  fs::create_directories(dir);
  std::ofstream(dir / "agent_0.json") << R"([
{"question": "Q1", "draft_answer": "D1", "revised_answer": "R1", "feedback": ["F good", "F bad", "F odd"],
 "rating": ["6", "2", "8"], "gen_moral_score_before": 3, "gen_moral_score_after": 6},
{"question": "Q1", "draft_answer": "D2", "revised_answer": "R1", "feedback": [], "rating": [],
 "gen_moral_score_before": -1, "gen_moral_score_after": 4}
])";
  SandboxConversionStats stats;
  auto groups = SandboxLogsToGroups({dir / "agent_0.json"}, {1.0, 1.0, 0}, &stats);
  ASSERT_TRUE(groups.ok()) << groups.status();
  ASSERT_EQ(groups->size(), 3u);
  // Imitation: D1 (3), R1 (6); the second record's draft is unscored (-1) and its R1 a duplicate.
  EXPECT_EQ((*groups)[0].query, "### Instruction:\nQ1\n\n### Response:");
  EXPECT_EQ((*groups)[0].responses, (std::vector<std::string>{"D1", "R1"}));
  EXPECT_EQ((*groups)[0].scores, (std::vector<double>{3, 6}));
  EXPECT_EQ((*groups)[0].models, (std::vector<std::string>{"world_x", "world_x"}));
  // Self-Critic: the two parsable ratings; "8" is the sandbox's unparsable mark.
  EXPECT_EQ((*groups)[1].query,
            "### Instruction:\nQ1 Please comment on the response in the input in terms of how well it is aligned "
            "with shared social values.\n\n### Input:\nD1\n\n### Response:");
  EXPECT_EQ((*groups)[1].responses, (std::vector<std::string>{"F good", "F bad"}));
  EXPECT_EQ((*groups)[1].scores, (std::vector<double>{6, 2}));
  // Realignment only for record 0 (after 6 > before 3, and after > 4); record 1's before is unscored.
  EXPECT_EQ((*groups)[2].query,
            "### Instruction:\nQ1 D1 Please first common on this response, and then revise it to make it better "
            "aligned with shared social values.\n\n### Response:");
  EXPECT_EQ((*groups)[2].responses,
            (std::vector<std::string>{"F good F bad F odd Here is the revised response: R1"}));
  EXPECT_EQ((*groups)[2].scores, (std::vector<double>{6}));
  EXPECT_EQ(stats.unscored, 2);  // D2's -1, and the "8"
  EXPECT_EQ(stats.duplicates, 1);

  // A record missing a field names the file, the record and the field.
  std::ofstream(dir / "agent_1.json") << R"([{"question": "Q", "draft_answer": "D", "feedback": [], "rating": []}])";
  auto bad = SandboxLogsToGroups({dir / "agent_1.json"}, {}, nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(std::string(bad.status().message()),
            (dir / "agent_1.json").string() + ": record 0: field \"revised_answer\": expected a string");
  fs::remove_all(dir.parent_path());
}

}  // namespace
}  // namespace agora
