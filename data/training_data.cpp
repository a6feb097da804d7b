#include "data/training_data.h"

#include <algorithm>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "data/packing.h"
#include "data/seeded_permutation.h"
#include "util/status_macros.h"

namespace agora {
namespace {

// Streams used by SeededPermutation, so that the packing order and the epoch orders are independent draws.
constexpr uint64_t kPackingStream = 0;
uint64_t EpochStream(int64_t epoch) { return static_cast<uint64_t>(epoch) + 1; }

// Rows are fixed once, at Open: samples are packed (or, without packing, each is its own row) in one seeded
// order, and each epoch shuffles the rows. Packing per epoch would let the number of rows, hence of batches,
// change from epoch to epoch; a fixed count keeps schedules, progress and the saved {epoch, batch} simple.
// Global batch b of an epoch takes rows [b * R * W, (b + 1) * R * W) of that epoch's row order; rank r reads its
// R of them. The last batch is completed with empty (all-padding) rows, so no sample is dropped and every rank
// runs the same number of steps.
class Loader : public TrainingDataLoader {
 public:
  Loader(TrainingDataOptions options, std::shared_ptr<const Tokenizer> tokenizer, JsonlDataset dataset)
      : options_(std::move(options)), tokenizer_(std::move(tokenizer)), dataset_(std::move(dataset)) {}

  absl::Status Index() {
    render_ = RecordTokenizerOptions{options_.chat_template,  options_.max_seq_len,    options_.responses_per_query,
                                     options_.append_eos,     options_.meta_prompts,   options_.max_source_len,
                                     options_.max_target_len};
    const RecordFormat format = dataset_.format();
    if (IsGroupFormat(format) && options_.packing)
      return absl::InvalidArgumentError(absl::StrCat(
          options_.path.string(), ": records of this format give several sequences an objective compares; they "
          "need data.packing=false (one record a row)"));
    if (format != RecordFormat::kAuto) AGORA_RETURN_IF_ERROR(CheckRecordTokenizer(format, render_, *tokenizer_));
    stats_.records = dataset_.size();
    stats_.skipped_bad_lines = dataset_.skipped_lines();
    stats_.skipped_examples = dataset_.skipped_messages();
    std::vector<int64_t> lengths;
    for (int64_t i = 0; i < dataset_.size(); ++i) {
      absl::StatusOr<TokenizedGroup> tokenized = Tokenize(i, /*epoch=*/0);
      // A record the chat template rejects (a role out of order, a missing response) is a bad line too.
      if (!tokenized.ok() && options_.bad_lines == BadLinePolicy::kSkip) {
        ++stats_.skipped_bad_lines;
        if (stats_.skipped_examples.size() < JsonlDataset::kMaxSkippedMessages)
          stats_.skipped_examples.emplace_back(tokenized.status().message());
        continue;
      }
      if (!tokenized.ok()) return tokenized.status();
      TokenizedGroup& group = *tokenized;
      if (group.sequences.empty()) {
        ++stats_.dropped_untrained;
        continue;
      }
      int64_t length = 0;
      for (const TokenizedSample& s : group.sequences) length += static_cast<int64_t>(s.ids.size());
      stats_.truncated += group.truncated;
      stats_.sequences += static_cast<int64_t>(group.sequences.size());
      records_.push_back(i);
      lengths.push_back(length);
      stats_.tokens += length;
    }
    stats_.samples = static_cast<int64_t>(records_.size());
    if (stats_.samples == 0) {
      return absl::InvalidArgumentError(absl::StrCat(options_.path.string(), ": no record with a trained token"));
    }
    std::vector<int64_t> order = options_.shuffle ? SeededPermutation(stats_.samples, options_.seed, kPackingStream)
                                                  : Identity(stats_.samples);
    if (options_.packing) {
      rows_ = PackInOrder(lengths, order, options_.max_seq_len);
    } else {
      for (int64_t s : order) rows_.push_back({s});
    }
    stats_.rows = static_cast<int64_t>(rows_.size());
    const int64_t rows_per_batch = options_.batch_rows * options_.world_size;
    stats_.batches_per_epoch = (static_cast<int64_t>(rows_.size()) + rows_per_batch - 1) / rows_per_batch;
    return absl::OkStatus();
  }

  const TrainingDataStats& stats() const override { return stats_; }
  RecordFormat format() const override { return dataset_.format(); }

  absl::StatusOr<PackedBatch> Get(const DataPosition& position) const override {
    if (position.batch < 0 || position.batch >= stats_.batches_per_epoch || position.epoch < 0) {
      return absl::OutOfRangeError(absl::StrCat("batch ", position.batch, " of epoch ", position.epoch,
                                                " is outside 0..", stats_.batches_per_epoch - 1));
    }
    const std::vector<int64_t> row_order = RowOrder(position.epoch);
    const int64_t first = (position.batch * options_.world_size + options_.rank) * options_.batch_rows;
    // Tokenize first, place after: RowSample points into `groups`, which must not grow any more by then.
    std::vector<TokenizedGroup> groups;
    std::vector<std::vector<int64_t>> row_samples;  // per row, this rank's sample numbers
    for (int64_t r = first; r < first + options_.batch_rows; ++r) {
      row_samples.emplace_back();
      if (r >= static_cast<int64_t>(row_order.size())) continue;  // an empty row completing the last batch
      for (int64_t s : rows_[row_order[r]]) {
        AGORA_ASSIGN_OR_RETURN(TokenizedGroup group, Tokenize(records_[s], position.epoch));
        groups.push_back(std::move(group));
        row_samples.back().push_back(s);
      }
    }
    std::vector<std::vector<RowSample>> placed(row_samples.size());
    size_t next = 0;
    int64_t longest = 1;
    for (size_t r = 0; r < row_samples.size(); ++r) {
      int64_t row_length = 0;
      for (int64_t s : row_samples[r]) {
        const TokenizedGroup& group = groups[next];
        for (size_t k = 0; k < group.sequences.size(); ++k) {
          row_length += static_cast<int64_t>(group.sequences[k].ids.size());
          placed[r].push_back({&group.sequences[k], static_cast<int32_t>(records_[s]), static_cast<int32_t>(next),
                               group.scores[k]});
        }
        ++next;
      }
      longest = std::max(longest, row_length);
    }
    // Packed rows are max_seq_len long; padded rows as long as the longest row of the batch.
    const int64_t seq_len = options_.packing ? options_.max_seq_len : longest;
    return AssembleBatch(placed, seq_len, tokenizer_->pad_id().value_or(0));
  }

 private:
  static std::vector<int64_t> Identity(int64_t n) {
    std::vector<int64_t> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = i;
    return v;
  }

  // Record i as sequences; a record with a sequence left without trained token gives none (left out).
  absl::StatusOr<TokenizedGroup> Tokenize(int64_t i, int64_t epoch) const {
    AGORA_ASSIGN_OR_RETURN(Record record, dataset_.GetRecord(i));
    // Stable Alignment's draw of K responses: a pure function of (seed, epoch, record).
    const uint64_t draw_seed = options_.seed ^ (0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(epoch + 1)) ^
                               (0xBF58476D1CE4E5B9ULL * static_cast<uint64_t>(i + 1));
    absl::StatusOr<TokenizedGroup> group = TokenizeRecord(record, render_, *tokenizer_, draw_seed);
    if (!group.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(options_.path.string(), ":", dataset_.line_number(i), ": ",
                                                     group.status().message()));
    }
    if (!std::all_of(group->sequences.begin(), group->sequences.end(), HasTrainedToken)) group->sequences.clear();
    return group;
  }

  // The row order of an epoch; the latest one is cached, since a run asks for the same epoch many times.
  std::vector<int64_t> RowOrder(int64_t epoch) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cached_epoch_ != epoch) {
      const int64_t n = static_cast<int64_t>(rows_.size());
      cached_order_ = options_.shuffle ? SeededPermutation(n, options_.seed, EpochStream(epoch)) : Identity(n);
      cached_epoch_ = epoch;
    }
    return cached_order_;
  }

  TrainingDataOptions options_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  JsonlDataset dataset_;
  RecordTokenizerOptions render_;
  TrainingDataStats stats_;
  std::vector<int64_t> records_;                  // sample -> dataset record
  std::vector<std::vector<int64_t>> rows_;        // row -> samples
  mutable std::mutex mutex_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> cached_order_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TrainingDataLoader>> TrainingDataLoader::Open(const TrainingDataOptions& options,
                                                                   std::shared_ptr<const Tokenizer> tokenizer) {
  if (options.max_seq_len < 2 || options.batch_rows < 1 || options.world_size < 1 || options.rank < 0 ||
      options.rank >= options.world_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data loader: need max_seq_len >= 2, batch_rows >= 1 and 0 <= rank < world_size; got max_seq_len ",
        options.max_seq_len, ", batch_rows ", options.batch_rows, ", rank ", options.rank, " of ",
        options.world_size));
  }
  AGORA_ASSIGN_OR_RETURN(JsonlDataset dataset,
                         JsonlDataset::Open(options.path, options.format, options.fields, options.bad_lines));
  auto loader = std::make_unique<Loader>(options, std::move(tokenizer), std::move(dataset));
  AGORA_RETURN_IF_ERROR(loader->Index());
  return loader;
}

}  // namespace agora
