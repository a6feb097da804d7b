// The KV cache of a generation engine (models/generation_engine.h): a fixed number of slots, one sequence each,
// with its own length. The engine keeps its running sequences in slots [0, n) (a leaving sequence's slot is filled
// by the last one), so a decode step reads the first n slots as one view, with no copy and no padding rows.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/config.h"
#include "models/kv_cache.h"

namespace agora {

// One layer's keys and values over a range of positions, [Hkv, n, D] each.
struct LayerKV {
  at::Tensor keys, values;
};

class SlotKVCache {
 public:
  SlotKVCache(const LlamaConfig& config, int64_t slots, int64_t capacity, at::ScalarType dtype, at::Device device);

  int64_t slots() const { return static_cast<int64_t>(lengths_.size()); }
  int64_t capacity() const { return capacity_; }
  int64_t length(int64_t slot) const { return lengths_.at(slot); }
  void Clear(int64_t slot) { lengths_.at(slot) = 0; }
  // Slot `from`'s positions and length become slot `to`'s (a sequence leaves; the last one takes its slot).
  void Move(int64_t from, int64_t to);

  // Positions [begin, end) of `slot`, copied out (what the prefix cache keeps), one entry per layer.
  std::vector<LayerKV> Read(int64_t slot, int64_t begin, int64_t end) const;
  // Writes `kv` (from Read) at positions [begin, begin + n) of `slot`, whose length becomes begin + n.
  void Write(int64_t slot, int64_t begin, const std::vector<LayerKV>& kv);

  // A forward over [1, S] tokens of one sequence (a prompt chunk): appends after the slot's positions and attends
  // causally over all of them.
  class SequenceView : public KVCacheView {
   public:
    SequenceView(SlotKVCache& cache, int64_t slot) : cache_(cache), slot_(slot) {}
    int64_t query_offset() const override { return cache_.lengths_[slot_]; }
    std::pair<at::Tensor, at::Tensor> Append(int64_t layer, const at::Tensor& k, const at::Tensor& v) override;
    void Advance(int64_t steps) override { cache_.lengths_[slot_] += steps; }

   private:
    SlotKVCache& cache_;
    int64_t slot_;
  };

  // A decode step of slots [0, rows), one token each ([rows, 1] ids): every row appends at its own length. The
  // caller attends without the causal rule, through key_valid() (row b sees its first length(b) + 1 positions).
  class DecodeView : public KVCacheView {
   public:
    DecodeView(SlotKVCache& cache, int64_t rows);
    int64_t query_offset() const override { return 0; }
    std::pair<at::Tensor, at::Tensor> Append(int64_t layer, const at::Tensor& k, const at::Tensor& v) override;
    void Advance(int64_t steps) override;
    const at::Tensor& key_valid() const { return key_valid_; }  // [rows, longest + 1] bool
    const at::Tensor& positions() const { return positions_; }  // [rows, 1] int64: each row's new position

   private:
    SlotKVCache& cache_;
    int64_t rows_, span_;  // span: the longest row's length + 1
    at::Tensor row_index_, positions_, key_valid_;
  };

 private:
  std::vector<at::Tensor> keys_, values_;  // per layer [slots, Hkv, capacity, D]
  std::vector<int64_t> lengths_;
  int64_t capacity_;
};

}  // namespace agora
