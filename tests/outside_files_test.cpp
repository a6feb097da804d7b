// The small files of a model folder, an adapter and a checkpoint that come from outside (torch-free parsers), and
// the resume policy: each malformed value is refused naming the file and key, nothing is accepted half-checked.
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "models/lora_config.h"
#include "models/shard_index.h"
#include "trainer/recipe.h"
#include "trainer/resume_policy.h"
#include "trainer/trainer_state.h"

namespace agora {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ErrorOf(const absl::Status& status) {
  EXPECT_FALSE(status.ok());
  return std::string(status.message());
}

constexpr char kAdapter[] = R"({"peft_type": "LORA", "r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
  "target_modules": ["q_proj", "v_proj"], "bias": "none", "rank_pattern": {}, "modules_to_save": null})";

TEST(PeftAdapterConfigTest, ReadsWhatPeftWrites) {
  absl::StatusOr<LoraConfig> config = ParsePeftAdapterConfig(kAdapter, "a/adapter_config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->rank, 16);
  EXPECT_DOUBLE_EQ(config->alpha, 32);
  EXPECT_DOUBLE_EQ(config->dropout, 0.05);
  EXPECT_THAT(config->targets, ElementsAre("q_proj", "v_proj"));
  EXPECT_DOUBLE_EQ(config->scaling(), 2.0);
}

TEST(PeftAdapterConfigTest, AValueOfTheWrongTypeIsRefusedNamingItsKey) {
  std::string text = kAdapter;
  text.replace(text.find("32"), 2, "\"8\"");
  EXPECT_THAT(ErrorOf(ParsePeftAdapterConfig(text, "a/adapter_config.json").status()),
              AllOf(HasSubstr("a/adapter_config.json"), HasSubstr("\"lora_alpha\""), HasSubstr("number"),
                    HasSubstr("\"8\"")));
  EXPECT_THAT(ErrorOf(ParsePeftAdapterConfig(R"({"peft_type": 7})", "f").status()), HasSubstr("\"peft_type\""));
  EXPECT_THAT(ErrorOf(ParsePeftAdapterConfig(R"({"peft_type": "LORA", "r": 2.5, "lora_alpha": 1})", "f").status()),
              HasSubstr("\"r\" must be a whole number"));
  EXPECT_THAT(ErrorOf(ParsePeftAdapterConfig(
                  R"({"peft_type": "LORA", "r": 2, "lora_alpha": 1, "target_modules": [1]})", "f").status()),
              HasSubstr("\"target_modules\""));
  EXPECT_THAT(ErrorOf(ParsePeftAdapterConfig("[1, 2]", "f").status()), HasSubstr("not a JSON object"));
}

TEST(ShardIndexTest, ListsEachShardOnceAndRefusesPathsOutOfTheFolder) {
  absl::StatusOr<std::vector<std::string>> shards = ParseShardIndex(
      R"({"weight_map": {"a": "m-2.safetensors", "b": "m-1.safetensors", "c": "m-2.safetensors"}})", "i.json");
  ASSERT_TRUE(shards.ok()) << shards.status();
  EXPECT_THAT(*shards, ElementsAre("m-1.safetensors", "m-2.safetensors"));
  for (const char* bad : {"../x.safetensors", "/etc/passwd", "..", "."})
    EXPECT_THAT(ErrorOf(ParseShardIndex(absl::StrCat(R"({"weight_map": {"t": ")", bad, R"("}})"), "i.json").status()),
                AllOf(HasSubstr("i.json"), HasSubstr("'t'")))
        << bad;
  EXPECT_THAT(ErrorOf(ParseShardIndex(R"({"weight_map": {}})", "i.json").status()), HasSubstr("empty"));
  EXPECT_THAT(ErrorOf(ParseShardIndex(R"({"weight_map": {"t": 3}})", "i.json").status()), HasSubstr("not a file name"));
}

TEST(TrainerStateTest, RoundTripsWithFileDigests) {
  TrainerState state;
  state.step = 12;
  state.data = {1, 3};
  state.skipped_steps = 1;
  state.trained_tokens = 4096;
  state.seed = 18446744073709551615ull;  // every uint64 seed survives
  state.world_size = 2;
  state.rng_states = {{"cpu", "AAEC"}};
  state.files = {{"model.safetensors", {388856, 0xdeadbeef}}};
  absl::StatusOr<TrainerState> back = ParseTrainerState(TrainerStateToJson(state), "s.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->step, 12);
  EXPECT_EQ(back->data.batch, 3);
  EXPECT_EQ(back->seed, state.seed);
  EXPECT_EQ(back->rng_states, state.rng_states);
  EXPECT_EQ(back->files, state.files);
}

TEST(TrainerStateTest, MalformedFieldsAreRefusedNamingThem) {
  TrainerState state;
  state.step = 3;
  const std::string good = TrainerStateToJson(state);
  auto with = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    text.replace(text.find(from), from.size(), to);
    return ErrorOf(ParseTrainerState(text, "ckpt/trainer_state.json").status());
  };
  EXPECT_THAT(with("\"step\": 3", "\"step\": -1"), AllOf(HasSubstr("ckpt/trainer_state.json"), HasSubstr("\"step\"")));
  EXPECT_THAT(with("\"step\": 3", "\"step\": \"3\""), HasSubstr("\"step\" has the wrong type"));
  EXPECT_THAT(with("\"epoch\": 0", "\"epoch\": 1.5"), HasSubstr("\"data_position.epoch\""));
  EXPECT_THAT(with("\"skipped_steps\": 0", "\"skipped_steps\": 9"), HasSubstr("exceeds"));
  EXPECT_THAT(with("\"world_size\": 1", "\"world_size\": 0"), HasSubstr("\"world_size\""));
  EXPECT_THAT(with("\"files\": {}", "\"files\": {\"../x\": {\"bytes\": 1, \"crc32c\": 2}}"),
              HasSubstr("not a file of the checkpoint"));
  EXPECT_THAT(with("\"files\": {}", "\"files\": {\"x\": {\"bytes\": 1, \"crc32c\": 4294967296}}"),
              HasSubstr("32-bit"));
}

constexpr char kRecipe[] =
    "model:\n  path: m\noutput_dir: out\ndata:\n  train:\n    path: t.jsonl\nlora:\n  rank: 16\n";

Recipe RecipeWith(const std::vector<std::string>& overrides) {
  absl::StatusOr<Recipe> recipe = ParseRecipe(kRecipe, "r.yaml", overrides);
  EXPECT_TRUE(recipe.ok()) << recipe.status();
  return recipe.ok() ? *recipe : Recipe{};
}

TEST(ResumePolicyTest, KeysThatChangeWhatACheckpointMeansAreRefusedOthersAllowed) {
  const Recipe saved = RecipeWith({});
  const ResumeChanges changes = CompareForResume(
      saved, RecipeWith({"lora.rank=8", "seed=3", "training.batch_size=2", "data.max_seq_len=64", "optimizer.lr=1e-5",
                         "training.max_steps=99", "checkpoint.every_steps=7", "resume=out/checkpoints/step_0000002"}));
  std::vector<std::string> refused, allowed;
  for (const RecipeChange& c : changes.refused) refused.push_back(c.key);
  for (const RecipeChange& c : changes.allowed) allowed.push_back(c.key);
  EXPECT_THAT(refused, ElementsAre("lora.rank", "seed", "data.max_seq_len"));
  // training.batch_size may change: the data position is remapped by rows (resuming at another world size).
  EXPECT_THAT(allowed, ElementsAre("training.batch_size", "training.max_steps", "optimizer.lr",
                                   "checkpoint.every_steps", "resume"));
  EXPECT_THAT(DescribeChanges(changes.refused), HasSubstr("lora.rank 16 -> 8"));
  EXPECT_TRUE(CompareForResume(saved, saved).refused.empty());
  EXPECT_TRUE(CompareForResume(saved, saved).allowed.empty());
}

}  // namespace
}  // namespace agora
