// The pure parts of batching, kept apart from files and tokenizers so they can be tested exhaustively: greedy
// sample packing, and the assembly of rows of tokenized samples into one fixed-shape PackedBatch.
#pragma once

#include <cstdint>
#include <vector>

#include "data/batch.h"

namespace agora {

// Packs samples, taken in `order`, into rows of at most `capacity` tokens: each sample goes into the current row
// if it fits, else starts a new one (next-fit, the order is kept; every length must be <= capacity).
// Returns the rows as lists of sample indexes.
std::vector<std::vector<int64_t>> PackInOrder(const std::vector<int64_t>& lengths, const std::vector<int64_t>& order,
                                              int64_t capacity);

// One sample (sequence) placed in a row: its tokens, its record's index in the dataset file, and for objectives
// that compare sequences, its group (the sequences of one record, e.g. a query's responses; -1 = a group of its
// own) and score.
struct RowSample {
  const TokenizedSample* sample;
  int32_t index;
  int32_t group = -1;  // numbered within the batch, in order of first appearance
  float score = 0.0f;
};

// Lays `rows` out as `seq_len`-token rows (each row's samples back to back, then padding with `pad_id`),
// flattened row-major. Every sample's first label becomes kIgnoreLabel and its positions restart at 0;
// cu_seqlens holds one segment per sample and one per padding run; sequence_id, sequence_group and
// sequence_score describe the samples. Each row must fit in seq_len.
PackedBatch AssembleBatch(const std::vector<std::vector<RowSample>>& rows, int64_t seq_len, int64_t pad_id);

}  // namespace agora
