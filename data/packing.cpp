#include "data/packing.h"

#include <cstddef>

namespace agora {

std::vector<std::vector<int64_t>> PackInOrder(const std::vector<int64_t>& lengths, const std::vector<int64_t>& order,
                                              int64_t capacity) {
  std::vector<std::vector<int64_t>> rows;
  int64_t used = capacity;  // forces a new row for the first sample
  for (int64_t s : order) {
    if (used + lengths[s] > capacity) {
      rows.emplace_back();
      used = 0;
    }
    rows.back().push_back(s);
    used += lengths[s];
  }
  return rows;
}

PackedBatch AssembleBatch(const std::vector<std::vector<RowSample>>& rows, int64_t seq_len, int64_t pad_id) {
  PackedBatch b;
  b.rows = static_cast<int64_t>(rows.size());
  b.seq_len = seq_len;
  const size_t total = static_cast<size_t>(b.rows * seq_len);
  b.input_ids.reserve(total);
  b.labels.reserve(total);
  b.position_ids.reserve(total);
  b.sample_index.reserve(total);
  b.sequence_id.reserve(total);
  b.cu_seqlens.push_back(0);
  int32_t last_group = -1;
  for (const std::vector<RowSample>& row : rows) {
    int64_t used = 0;
    for (const RowSample& s : row) {
      // A new group starts at every sample without one, and whenever the group number changes.
      if (s.group < 0 || s.group != last_group) ++b.num_groups;
      last_group = s.group;
      b.sequence_group.push_back(static_cast<int32_t>(b.num_groups - 1));
      b.sequence_score.push_back(s.score);
      const int64_t n = static_cast<int64_t>(s.sample->ids.size());
      for (int64_t t = 0; t < n; ++t) {
        b.input_ids.push_back(s.sample->ids[t]);
        // The first token has no prediction inside its sample: never trained, so no sample learns its neighbour.
        const int64_t label = t == 0 ? kIgnoreLabel : s.sample->labels[t];
        b.labels.push_back(label);
        b.trained_tokens += label != kIgnoreLabel;
        b.position_ids.push_back(t);
        b.sample_index.push_back(s.index);
        b.sequence_id.push_back(static_cast<int32_t>(b.num_samples));
      }
      used += n;
      b.cu_seqlens.push_back(b.cu_seqlens.back() + n);
      ++b.num_samples;
    }
    if (used < seq_len) {
      b.input_ids.insert(b.input_ids.end(), seq_len - used, pad_id);
      b.labels.insert(b.labels.end(), seq_len - used, kIgnoreLabel);
      b.position_ids.insert(b.position_ids.end(), seq_len - used, 0);
      b.sample_index.insert(b.sample_index.end(), seq_len - used, -1);
      b.sequence_id.insert(b.sequence_id.end(), seq_len - used, -1);
      b.cu_seqlens.push_back(b.cu_seqlens.back() + (seq_len - used));
    }
  }
  return b;
}

}  // namespace agora
