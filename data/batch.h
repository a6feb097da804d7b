// The data vocabulary every stage after tokenisation shares: one tokenized sample (ids and labels), and the
// fixed-shape batch the loaders hand to the trainer. kIgnoreLabel (the untrained label) lives in util/ because
// the loss kernels, which know nothing of data/, read it too.
#pragma once

#include <cstdint>
#include <vector>

#include "util/ignore_label.h"

namespace agora {

struct TokenizedSample {
  std::vector<int32_t> ids;
  // Aligned with ids (Hugging Face convention, the shift happens in the loss): the id itself where trained,
  // kIgnoreLabel elsewhere.
  std::vector<int32_t> labels;
};

// Rows of one batch, flattened row-major into rows * seq_len tokens. Padding tokens use the tokenizer's pad id
// (or 0), have label kIgnoreLabel, position 0, and sample_index -1.
struct PackedBatch {
  int64_t rows = 0;
  int64_t seq_len = 0;
  std::vector<int64_t> input_ids;
  // Hugging Face convention: labels[t] is the target of the prediction made at t - 1; kIgnoreLabel = untrained.
  // The first token of every sample is kIgnoreLabel, so no sample is ever trained to predict its neighbour.
  std::vector<int64_t> labels;
  std::vector<int64_t> position_ids;  // restart at 0 for every sample
  // Boundaries of every segment (sample or padding run) in the flattened token stream: [num_segments + 1],
  // cu_seqlens[0] = 0, last = rows * seq_len. Attention never crosses a boundary.
  std::vector<int64_t> cu_seqlens;
  std::vector<int32_t> sample_index;  // per token: index of its sample in the dataset file; -1 for padding
  std::vector<int32_t> sequence_id;   // per token: its sample's number in this batch (0..num_samples-1); -1 padding
  // Per sample: its group (the samples one record gave, e.g. a query's K responses or a preference pair; numbered
  // 0..num_groups-1 within the batch) and its score (a rating; 1 chosen / 0 rejected; 0 for SFT).
  std::vector<int32_t> sequence_group;
  std::vector<float> sequence_score;
  int64_t num_samples = 0;
  int64_t num_groups = 0;
  int64_t trained_tokens = 0;  // labels != kIgnoreLabel
};

}  // namespace agora
