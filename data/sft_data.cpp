#include "data/sft_data.h"

#include <algorithm>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "data/packing.h"
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
class Loader : public SftDataLoader {
 public:
  Loader(SftDataOptions options, std::shared_ptr<const Tokenizer> tokenizer, JsonlDataset dataset)
      : options_(std::move(options)), tokenizer_(std::move(tokenizer)), dataset_(std::move(dataset)) {}

  absl::Status Index() {
    AGORA_RETURN_IF_ERROR(CheckChatTemplate(options_.chat_template, *tokenizer_));
    stats_.records = dataset_.size();
    stats_.skipped_bad_lines = dataset_.skipped_lines();
    std::vector<int64_t> lengths;
    for (int64_t i = 0; i < dataset_.size(); ++i) {
      AGORA_ASSIGN_OR_RETURN(Truncated t, Tokenize(i));
      const TokenizedSample& sample = t.sample;
      const int64_t length = static_cast<int64_t>(sample.ids.size());
      // The first label is never trained (AssembleBatch), so a sample needs a trained label after it.
      if (std::none_of(sample.labels.begin() + std::min<int64_t>(length, 1), sample.labels.end(),
                       [](int32_t l) { return l != kIgnoreLabel; })) {
        ++stats_.dropped_untrained;
        continue;
      }
      stats_.truncated += t.truncated;
      records_.push_back(i);
      lengths.push_back(length);
      stats_.tokens += length;
    }
    stats_.samples = static_cast<int64_t>(records_.size());
    if (stats_.samples == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(options_.path.string(), ": no sample with a trained (assistant) token"));
    }
    std::vector<int64_t> order = options_.shuffle ? SeededPermutation(stats_.samples, options_.seed, kPackingStream)
                                                  : Identity(stats_.samples);
    if (options_.packing) {
      rows_ = PackInOrder(lengths, order, options_.max_seq_len);
    } else {
      for (int64_t s : order) rows_.push_back({s});
    }
    const int64_t rows_per_batch = options_.batch_rows * options_.world_size;
    stats_.batches_per_epoch = (static_cast<int64_t>(rows_.size()) + rows_per_batch - 1) / rows_per_batch;
    return absl::OkStatus();
  }

  const SftDataStats& stats() const override { return stats_; }

  absl::StatusOr<PackedBatch> Get(const DataPosition& position) const override {
    if (position.batch < 0 || position.batch >= stats_.batches_per_epoch || position.epoch < 0) {
      return absl::OutOfRangeError(absl::StrCat("batch ", position.batch, " of epoch ", position.epoch,
                                                " is outside 0..", stats_.batches_per_epoch - 1));
    }
    const std::vector<int64_t> row_order = RowOrder(position.epoch);
    const int64_t first = (position.batch * options_.world_size + options_.rank) * options_.batch_rows;
    // Tokenize first, place after: RowSample points into `samples`, which must not grow any more by then.
    std::vector<TokenizedSample> samples;
    std::vector<std::vector<int64_t>> row_samples;  // per row, this rank's sample numbers
    for (int64_t r = first; r < first + options_.batch_rows; ++r) {
      row_samples.emplace_back();
      if (r >= static_cast<int64_t>(row_order.size())) continue;  // an empty row completing the last batch
      for (int64_t s : rows_[row_order[r]]) {
        AGORA_ASSIGN_OR_RETURN(Truncated t, Tokenize(records_[s]));
        samples.push_back(std::move(t.sample));
        row_samples.back().push_back(s);
      }
    }
    std::vector<std::vector<RowSample>> placed(row_samples.size());
    size_t next = 0;
    int64_t longest = 1;
    for (size_t r = 0; r < row_samples.size(); ++r) {
      for (int64_t s : row_samples[r]) {
        longest = std::max<int64_t>(longest, samples[next].ids.size());
        placed[r].push_back({&samples[next++], static_cast<int32_t>(records_[s])});
      }
    }
    // Packed rows are max_seq_len long; padded rows as long as the longest sample of the batch.
    const int64_t seq_len = options_.packing ? options_.max_seq_len : longest;
    return AssembleBatch(placed, seq_len, tokenizer_->pad_id().value_or(0));
  }

 private:
  static std::vector<int64_t> Identity(int64_t n) {
    std::vector<int64_t> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = i;
    return v;
  }

  struct Truncated {
    TokenizedSample sample;
    bool truncated = false;
  };
  // Record i, tokenized and cut to max_seq_len. The policy: keep the beginning (the prompt and the start of the
  // answer); the loader's statistics count the samples cut.
  absl::StatusOr<Truncated> Tokenize(int64_t i) const {
    AGORA_ASSIGN_OR_RETURN(Conversation conversation, dataset_.Get(i));
    absl::StatusOr<TokenizedSample> sample = TokenizeConversation(options_.chat_template, conversation, *tokenizer_);
    if (!sample.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(options_.path.string(), ":", dataset_.line_number(i), ": ",
                                                     sample.status().message()));
    }
    Truncated out{*std::move(sample), false};
    if (static_cast<int64_t>(out.sample.ids.size()) > options_.max_seq_len) {
      out.truncated = true;
      out.sample.ids.resize(options_.max_seq_len);
      out.sample.labels.resize(options_.max_seq_len);
    }
    return out;
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

  SftDataOptions options_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  JsonlDataset dataset_;
  SftDataStats stats_;
  std::vector<int64_t> records_;                  // sample -> dataset record
  std::vector<std::vector<int64_t>> rows_;        // row -> samples
  mutable std::mutex mutex_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> cached_order_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SftDataLoader>> SftDataLoader::Open(const SftDataOptions& options,
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
