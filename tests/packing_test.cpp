// Batching: the seeded permutation, next-fit packing and batch assembly on hand-made inputs with exact expected
// layouts; then the SFT data loader on a generated JSONL file: every sample exactly once per epoch, seeded
// epoch orders, disjoint data-parallel shards with equal batch counts, padding mode, truncation and dropped
// samples counted, errors naming file and line.
#include "data/packing.h"
#include "data/seeded_permutation.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "data/sentencepiece_tokenizer.h"
#include "data/training_data.h"

namespace agora {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr int64_t kIgnore = kIgnoreLabel;

TEST(SeededPermutation, IsADeterministicPermutationPerSeedAndStream) {
  const std::vector<int64_t> a = SeededPermutation(1000, 7, 3);
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(a, SeededPermutation(1000, 7, 3));
  EXPECT_NE(a, SeededPermutation(1000, 8, 3));
  EXPECT_NE(a, SeededPermutation(1000, 7, 4));
  EXPECT_TRUE(SeededPermutation(0, 1, 1).empty());
  EXPECT_THAT(SeededPermutation(1, 1, 1), ElementsAre(0));
}

TEST(PackInOrder, NextFitKeepsTheOrder) {
  //                         sample: 0  1  2  3  4  5
  const std::vector<int64_t> lengths{5, 3, 8, 2, 6, 2};
  EXPECT_EQ(PackInOrder(lengths, {0, 1, 2, 3, 4, 5}, 8),
            (std::vector<std::vector<int64_t>>{{0, 1}, {2}, {3, 4}, {5}}));
  EXPECT_EQ(PackInOrder(lengths, {5, 4, 3, 2, 1, 0}, 10),
            (std::vector<std::vector<int64_t>>{{5, 4, 3}, {2}, {1, 0}}));
  EXPECT_TRUE(PackInOrder(lengths, {}, 8).empty());
}

TEST(AssembleBatch, RestartsPositionsIgnoresFirstLabelsAndMarksSegments) {
  const TokenizedSample a{{10, 11, 12}, {kIgnore, 11, 12}};
  const TokenizedSample b{{20, 21}, {20, 21}};  // its first label is trained in the sample: the batch drops it
  const TokenizedSample c{{30, 31, 32, 33}, {kIgnore, kIgnore, 32, 33}};
  const PackedBatch batch = AssembleBatch({{{&a, 4}, {&b, 9}}, {{&c, 2}}, {}}, 6, /*pad_id=*/0);
  EXPECT_EQ(batch.rows, 3);
  EXPECT_EQ(batch.seq_len, 6);
  EXPECT_THAT(batch.input_ids, ElementsAreArray<int64_t>({10, 11, 12, 20, 21, 0,  //
                                                          30, 31, 32, 33, 0, 0,   //
                                                          0, 0, 0, 0, 0, 0}));
  EXPECT_THAT(batch.labels, ElementsAreArray<int64_t>({kIgnore, 11, 12, kIgnore, 21, kIgnore,        //
                                                       kIgnore, kIgnore, 32, 33, kIgnore, kIgnore,  //
                                                       kIgnore, kIgnore, kIgnore, kIgnore, kIgnore, kIgnore}));
  EXPECT_THAT(batch.position_ids, ElementsAreArray<int64_t>({0, 1, 2, 0, 1, 0,  //
                                                             0, 1, 2, 3, 0, 0,  //
                                                             0, 0, 0, 0, 0, 0}));
  EXPECT_THAT(batch.sample_index, ElementsAreArray<int32_t>({4, 4, 4, 9, 9, -1,  //
                                                             2, 2, 2, 2, -1, -1,  //
                                                             -1, -1, -1, -1, -1, -1}));
  // Segments: a, b, padding | c, padding | padding.
  EXPECT_THAT(batch.cu_seqlens, ElementsAre(0, 3, 5, 6, 10, 12, 18));
  EXPECT_EQ(batch.num_samples, 3);
  EXPECT_EQ(batch.trained_tokens, 5);
}

// A JSONL file of `n` conversations whose questions and answers grow with the index, in a scratch folder.
class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* fixtures = std::getenv("AGORA_TOKENIZER_FIXTURES");
    ASSERT_NE(fixtures, nullptr) << "run through ctest (AGORA_TOKENIZER_FIXTURES)";
    auto tokenizer = SentencePieceTokenizer::Load(fs::path(fixtures) / "tokenizer.model");
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(*tokenizer);
    const char* scratch = std::getenv("AGORA_SCRATCH");
    dir_ = fs::path(scratch != nullptr ? scratch : fs::temp_directory_path().string()) /
           ("packing_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }

  fs::path WriteConversations(int n, const std::string& extra_line = "") {
    const fs::path path = dir_ / "data.jsonl";
    std::ofstream out(path);
    for (int i = 0; i < n; ++i) {
      std::string answer = "answer " + std::to_string(i);
      for (int k = 0; k < i % 7; ++k) answer += " and the quick brown fox";
      std::string question = "question " + std::to_string(i);
      for (int k = 0; k < i % 3; ++k) question += " tell me more";
      out << R"({"messages": [{"role": "user", "content": ")" << question
          << R"("}, {"role": "assistant", "content": ")" << answer << "\"}]}\n";
      if (i == 2 && !extra_line.empty()) out << extra_line << "\n";
    }
    return path;
  }

  std::unique_ptr<TrainingDataLoader> Open(const TrainingDataOptions& options) {
    auto loader = TrainingDataLoader::Open(options, tokenizer_);
    EXPECT_TRUE(loader.ok()) << loader.status();
    return loader.ok() ? std::move(*loader) : nullptr;
  }

  // The dataset records of one epoch in the order this loader yields them.
  static std::vector<int32_t> EpochSamples(const TrainingDataLoader& loader, int64_t epoch) {
    std::vector<int32_t> out;
    for (int64_t b = 0; b < loader.stats().batches_per_epoch; ++b) {
      auto batch = loader.Get({epoch, b});
      EXPECT_TRUE(batch.ok()) << batch.status();
      if (!batch.ok()) return out;
      for (size_t t = 0; t < batch->sample_index.size(); ++t)
        if (batch->sample_index[t] >= 0 && batch->position_ids[t] == 0) out.push_back(batch->sample_index[t]);
    }
    return out;
  }

  static std::vector<int32_t> Sorted(std::vector<int32_t> v) {
    std::sort(v.begin(), v.end());
    return v;
  }

  std::shared_ptr<const Tokenizer> tokenizer_;
  fs::path dir_;
};

std::vector<int32_t> Iota(int n) {
  std::vector<int32_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = i;
  return v;
}

TEST_F(LoaderTest, EverySampleOncePerEpochInASeededOrder) {
  TrainingDataOptions o;
  o.path = WriteConversations(40);
  o.max_seq_len = 64;
  o.batch_rows = 3;
  o.seed = 5;
  auto loader = Open(o);
  ASSERT_NE(loader, nullptr);
  EXPECT_EQ(loader->stats().records, 40);
  EXPECT_EQ(loader->stats().samples, 40);
  const std::vector<int32_t> e0 = EpochSamples(*loader, 0), e1 = EpochSamples(*loader, 1);
  EXPECT_EQ(Sorted(e0), Iota(40));
  EXPECT_EQ(Sorted(e1), Iota(40));
  EXPECT_NE(e0, e1) << "epochs should see the rows in different orders";
  EXPECT_EQ(e1, EpochSamples(*Open(o), 1)) << "the same seed gives the same order in a new loader";
  o.seed = 6;
  EXPECT_NE(e0, EpochSamples(*Open(o), 0));
}

TEST_F(LoaderTest, PackedBatchesFillRowsAndKeepSamplesApart) {
  TrainingDataOptions o;
  o.path = WriteConversations(40);
  o.max_seq_len = 64;
  o.batch_rows = 2;
  auto loader = Open(o);
  ASSERT_NE(loader, nullptr);
  int64_t tokens = 0;
  for (int64_t b = 0; b < loader->stats().batches_per_epoch; ++b) {
    auto batch = loader->Get({0, b});
    ASSERT_TRUE(batch.ok()) << batch.status();
    ASSERT_EQ(batch->input_ids.size(), 2u * 64u);
    ASSERT_EQ(batch->cu_seqlens.back(), 128);
    for (size_t s = 0; s + 1 < batch->cu_seqlens.size(); ++s) {
      const int64_t begin = batch->cu_seqlens[s], end = batch->cu_seqlens[s + 1];
      ASSERT_LT(begin, end);
      ASSERT_EQ(begin / 64, (end - 1) / 64) << "a segment crosses a row boundary";
      EXPECT_EQ(batch->labels[begin], kIgnore) << "first label of a segment must be ignored";
      for (int64_t t = begin; t < end; ++t) {
        ASSERT_EQ(batch->position_ids[t], batch->sample_index[t] < 0 ? 0 : t - begin);
        ASSERT_EQ(batch->sample_index[t], batch->sample_index[begin]);
      }
    }
    tokens += std::count_if(batch->sample_index.begin(), batch->sample_index.end(), [](int32_t i) { return i >= 0; });
  }
  EXPECT_EQ(tokens, loader->stats().tokens);
}

TEST_F(LoaderTest, DataParallelShardsAreDisjointWithEqualBatchCounts) {
  TrainingDataOptions o;
  o.path = WriteConversations(37);
  o.max_seq_len = 48;
  o.batch_rows = 2;
  o.world_size = 3;
  std::vector<int32_t> all;
  int64_t batches = -1;
  for (int64_t rank = 0; rank < 3; ++rank) {
    o.rank = rank;
    auto loader = Open(o);
    ASSERT_NE(loader, nullptr);
    if (batches < 0) batches = loader->stats().batches_per_epoch;
    EXPECT_EQ(loader->stats().batches_per_epoch, batches) << "rank " << rank;
    const std::vector<int32_t> mine = EpochSamples(*loader, 2);
    all.insert(all.end(), mine.begin(), mine.end());
  }
  EXPECT_EQ(Sorted(all), Iota(37)) << "the ranks together see every sample exactly once";
}

TEST_F(LoaderTest, PaddingModePadsToTheLongestRowOfTheBatch) {
  TrainingDataOptions o;
  o.path = WriteConversations(10);
  o.max_seq_len = 256;
  o.batch_rows = 4;
  o.packing = false;
  o.shuffle = false;
  auto loader = Open(o);
  ASSERT_NE(loader, nullptr);
  EXPECT_EQ(loader->stats().batches_per_epoch, 3);
  auto batch = loader->Get({0, 0});
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->rows, 4);
  EXPECT_EQ(batch->num_samples, 4);
  // Unshuffled: records 0..3, one per row, the batch as long as the longest of them.
  std::vector<int64_t> lengths;
  for (int r = 0; r < 4; ++r) {
    const auto row = batch->sample_index.begin() + r * batch->seq_len;
    EXPECT_EQ(*row, r);
    lengths.push_back(std::count(row, row + batch->seq_len, r));
  }
  EXPECT_EQ(batch->seq_len, *std::max_element(lengths.begin(), lengths.end()));
  // The last batch holds records 8 and 9 and two empty rows.
  auto last = loader->Get({0, 2});
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->num_samples, 2);
  EXPECT_EQ(last->rows, 4);
}

TEST_F(LoaderTest, TruncationKeepsTheBeginningAndUntrainedSamplesAreDropped) {
  TrainingDataOptions o;
  o.path = WriteConversations(14);
  o.shuffle = false;
  o.packing = false;
  o.batch_rows = 1;
  // Prompts take 23 tokens when i % 3 == 0 and more otherwise: at 26 tokens every kept sample is cut, and the
  // longer prompts leave no answer token at all.
  o.max_seq_len = 26;
  auto loader = Open(o);
  ASSERT_NE(loader, nullptr);
  const TrainingDataStats& s = loader->stats();
  EXPECT_EQ(s.records, 14);
  EXPECT_EQ(s.samples + s.dropped_untrained, 14);
  EXPECT_GT(s.dropped_untrained, 0);
  EXPECT_EQ(s.truncated, s.samples);
  for (int64_t b = 0; b < s.batches_per_epoch; ++b) {
    auto batch = loader->Get({0, b});
    ASSERT_TRUE(batch.ok());
    EXPECT_EQ(batch->seq_len, 26);
    EXPECT_GT(batch->trained_tokens, 0);
  }
  // Without a limit nothing is cut and every record is a sample.
  o.max_seq_len = 4096;
  auto whole = Open(o);
  ASSERT_NE(whole, nullptr);
  EXPECT_EQ(whole->stats().truncated, 0);
  EXPECT_EQ(whole->stats().samples, 14);
  // Truncation keeps the beginning: a cut sample is the uncut sample's first 26 tokens.
  auto cut = loader->Get({0, 0}), full = whole->Get({0, 0});
  ASSERT_TRUE(cut.ok() && full.ok());
  EXPECT_EQ(cut->sample_index[0], 0);
  EXPECT_EQ(full->sample_index[0], 0);
  ASSERT_GT(full->seq_len, 26);
  EXPECT_TRUE(std::equal(cut->input_ids.begin(), cut->input_ids.begin() + 26, full->input_ids.begin()));
}

TEST_F(LoaderTest, MalformedLinesNameFileAndLineOrAreSkippedAndCounted) {
  TrainingDataOptions o;
  o.path = WriteConversations(6, R"({"messages": [{"role": "robot", "content": "beep"}]})");
  auto failed = TrainingDataLoader::Open(o, tokenizer_);
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(std::string(failed.status().message()), HasSubstr(o.path.string() + ":4: "));
  EXPECT_THAT(std::string(failed.status().message()), HasSubstr("robot"));
  o.bad_lines = BadLinePolicy::kSkip;
  auto loader = Open(o);
  ASSERT_NE(loader, nullptr);
  EXPECT_EQ(loader->stats().skipped_bad_lines, 1);
  EXPECT_EQ(loader->stats().samples, 6);
}

TEST_F(LoaderTest, OutOfRangePositionsAreErrors) {
  TrainingDataOptions o;
  o.path = WriteConversations(5);
  auto loader = Open(o);
  ASSERT_NE(loader, nullptr);
  EXPECT_EQ(loader->Get({0, loader->stats().batches_per_epoch}).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(loader->Get({0, -1}).status().code(), absl::StatusCode::kOutOfRange);
  o.rank = 1;  // world_size 1
  EXPECT_EQ(TrainingDataLoader::Open(o, tokenizer_).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace agora
