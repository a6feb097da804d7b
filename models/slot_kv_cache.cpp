#include "models/slot_kv_cache.h"

#include <algorithm>

#include <ATen/ATen.h>

namespace agora {

SlotKVCache::SlotKVCache(const LlamaConfig& config, int64_t slots, int64_t capacity, at::ScalarType dtype,
                         at::Device device)
    : lengths_(slots, 0), capacity_(capacity) {
  // Zeros, not empty: a decode step reads every row up to the longest one's length, and masked positions still
  // enter the product with the values (weight 0 x a stale NaN would be NaN). Positions written once stay finite.
  const auto options = at::TensorOptions().dtype(dtype).device(device);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    keys_.push_back(at::zeros({slots, config.num_key_value_heads, capacity, config.head_dim}, options));
    values_.push_back(at::zeros({slots, config.num_key_value_heads, capacity, config.head_dim}, options));
  }
}

void SlotKVCache::Move(int64_t from, int64_t to) {
  if (from == to) return;
  const int64_t n = lengths_.at(from);
  for (size_t layer = 0; layer < keys_.size(); ++layer) {
    keys_[layer][to].narrow(1, 0, n).copy_(keys_[layer][from].narrow(1, 0, n));
    values_[layer][to].narrow(1, 0, n).copy_(values_[layer][from].narrow(1, 0, n));
  }
  lengths_.at(to) = n;
  lengths_[from] = 0;
}

std::vector<LayerKV> SlotKVCache::Read(int64_t slot, int64_t begin, int64_t end) const {
  TORCH_CHECK(0 <= begin && begin <= end && end <= lengths_.at(slot), "SlotKVCache::Read: positions [", begin, ", ",
              end, ") of a slot holding ", lengths_.at(slot));
  std::vector<LayerKV> out;
  for (size_t layer = 0; layer < keys_.size(); ++layer)
    out.push_back({keys_[layer][slot].narrow(1, begin, end - begin).clone(),
                   values_[layer][slot].narrow(1, begin, end - begin).clone()});
  return out;
}

void SlotKVCache::Write(int64_t slot, int64_t begin, const std::vector<LayerKV>& kv) {
  TORCH_CHECK(kv.size() == keys_.size(), "SlotKVCache::Write: ", kv.size(), " layers for a ", keys_.size(),
              "-layer cache");
  const int64_t n = kv.empty() ? 0 : kv[0].keys.size(1);
  TORCH_CHECK(begin >= 0 && begin + n <= capacity_, "SlotKVCache::Write: positions [", begin, ", ", begin + n,
              ") exceed capacity ", capacity_);
  for (size_t layer = 0; layer < keys_.size(); ++layer) {
    keys_[layer][slot].narrow(1, begin, n).copy_(kv[layer].keys);
    values_[layer][slot].narrow(1, begin, n).copy_(kv[layer].values);
  }
  lengths_.at(slot) = begin + n;
}

std::pair<at::Tensor, at::Tensor> SlotKVCache::SequenceView::Append(int64_t layer, const at::Tensor& k,
                                                                     const at::Tensor& v) {
  const int64_t begin = cache_.lengths_[slot_], steps = k.size(2);
  TORCH_CHECK(k.size(0) == 1, "SlotKVCache: a sequence view takes one row, got ", k.size(0));
  TORCH_CHECK(begin + steps <= cache_.capacity_, "SlotKVCache: ", begin, " + ", steps,
              " positions exceed capacity ", cache_.capacity_);
  at::Tensor keys = cache_.keys_[layer].narrow(0, slot_, 1), values = cache_.values_[layer].narrow(0, slot_, 1);
  keys.narrow(2, begin, steps).copy_(k);
  values.narrow(2, begin, steps).copy_(v);
  return {keys.narrow(2, 0, begin + steps), values.narrow(2, 0, begin + steps)};
}

SlotKVCache::DecodeView::DecodeView(SlotKVCache& cache, int64_t rows) : cache_(cache), rows_(rows) {
  TORCH_CHECK(rows > 0 && rows <= cache.slots(), "SlotKVCache: a decode step of ", rows, " rows in ", cache.slots(),
              " slots");
  const std::vector<int64_t> lengths(cache.lengths_.begin(), cache.lengths_.begin() + rows);
  span_ = *std::max_element(lengths.begin(), lengths.end()) + 1;
  TORCH_CHECK(span_ <= cache.capacity_, "SlotKVCache: a sequence of ", span_ - 1, " positions is at capacity ",
              cache.capacity_);
  const at::Device device = cache.keys_.front().device();
  const at::Tensor lengths_cpu = at::tensor(lengths, at::kLong);
  key_valid_ = (at::arange(span_, at::kLong).unsqueeze(0) <= lengths_cpu.unsqueeze(1)).to(device);
  positions_ = lengths_cpu.unsqueeze(1).to(device);
  row_index_ = at::arange(rows, at::TensorOptions().dtype(at::kLong).device(device));
}

std::pair<at::Tensor, at::Tensor> SlotKVCache::DecodeView::Append(int64_t layer, const at::Tensor& k,
                                                                   const at::Tensor& v) {
  TORCH_CHECK(k.size(0) == rows_ && k.size(2) == 1, "SlotKVCache: a decode step takes [", rows_,
              ", H, 1, D], got ", k.sizes());
  // keys[b, :, length(b), :] = k[b, :, 0, :] for every row at once.
  const at::Tensor position = positions_.squeeze(1);
  cache_.keys_[layer].index_put_({row_index_, at::indexing::Slice(), position}, k.squeeze(2));
  cache_.values_[layer].index_put_({row_index_, at::indexing::Slice(), position}, v.squeeze(2));
  return {cache_.keys_[layer].narrow(0, 0, rows_).narrow(2, 0, span_),
          cache_.values_[layer].narrow(0, 0, rows_).narrow(2, 0, span_)};
}

void SlotKVCache::DecodeView::Advance(int64_t steps) {
  for (int64_t b = 0; b < rows_; ++b) cache_.lengths_[b] += steps;
}

}  // namespace agora
