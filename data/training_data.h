// Training data, from a JSONL (or JSON array) file to fixed-shape token batches:
//   file --(JsonlDataset: byte-offset index, records parsed on demand)--> Record
//        --(data/record_tokenizer.h: the format's template, truncation)--> TokenizedGroup of sequences {ids, labels}
//        --(per-epoch plan: seeded shuffle, rank shard, packing or padding)--> PackedBatch
// A record's sequences always share a row, in order, so objectives that compare them (Stable Alignment's K
// responses, DPO's chosen and rejected) find them together; such group formats need packing off (one record a
// row), which IsGroupFormat tells.
// A batch is a pure function of (seed, epoch, batch index, rank, world size), so the data position a checkpoint
// saves is just {epoch, batch}.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/batch.h"
#include "data/chat_template.h"
#include "data/jsonl_dataset.h"
#include "data/record_tokenizer.h"
#include "data/tokenizer.h"

namespace agora {

struct TrainingDataOptions {
  std::filesystem::path path;
  RecordFormat format = RecordFormat::kAuto;
  FieldMap fields;
  ChatTemplateKind chat_template = ChatTemplateKind::kLlama2;
  BadLinePolicy bad_lines = BadLinePolicy::kError;
  int64_t max_seq_len = 2048;
  // Format-specific (data/record_tokenizer.h).
  int64_t responses_per_query = 3;
  bool append_eos = false;
  std::vector<std::string> meta_prompts;
  int64_t max_source_len = 512;
  int64_t max_target_len = 512;
  int64_t batch_rows = 1;   // rows of max_seq_len tokens per batch (group formats: records per batch)
  bool packing = true;      // false: one sample per row, right-padded to the longest row of the batch
  bool shuffle = true;
  uint64_t seed = 0;
  int64_t rank = 0;
  int64_t world_size = 1;
};

struct DataPosition {
  int64_t epoch = 0;
  int64_t batch = 0;  // batches of this epoch already consumed
};

struct TrainingDataStats {
  int64_t records = 0;             // records read from the file
  int64_t skipped_bad_lines = 0;   // malformed lines, and records the chat template rejects, skipped (kSkip)
  std::vector<std::string> skipped_examples;  // the first few of their messages, for the log
  int64_t truncated = 0;           // sequences cut (max_seq_len, Dromedary's source and target limits)
  int64_t dropped_untrained = 0;   // records with a sequence without trained token (after truncation), left out
  int64_t samples = 0;             // records in the epoch plans
  int64_t sequences = 0;           // their sequences (epoch 0's draw)
  int64_t rows = 0;                // rows of an epoch: packed rows, or one sample each without packing
  int64_t batches_per_epoch = 0;   // the same on every rank
  int64_t tokens = 0;              // tokens of all sequences (after truncation; epoch 0's draw)
};

class TrainingDataLoader {
 public:
  // Indexes the file, tokenizes every record once to learn its length (token ids are not kept: batches
  // re-read and re-tokenize their records), and fixes the statistics. Errors about a record read
  // "PATH:LINE: what was expected".
  static absl::StatusOr<std::unique_ptr<TrainingDataLoader>> Open(const TrainingDataOptions& options,
                                                             std::shared_ptr<const Tokenizer> tokenizer);
  virtual ~TrainingDataLoader() = default;

  virtual const TrainingDataStats& stats() const = 0;
  // The file's record format (kAuto resolved).
  virtual RecordFormat format() const = 0;
  // The batch at `position` (position.batch < stats().batches_per_epoch).
  virtual absl::StatusOr<PackedBatch> Get(const DataPosition& position) const = 0;
};

}  // namespace agora
