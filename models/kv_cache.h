// Key/value cache for incremental decoding, kept apart from the model so engines (generation now, simulators
// later) own and reuse caches while the model stays stateless.
#pragma once

#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/config.h"

namespace agora {

class KVCache {
 public:
  KVCache(const LlamaConfig& config, int64_t batch, int64_t capacity, at::ScalarType dtype, at::Device device);

  // Writes this step's keys/values [B, Hkv, S, D] of `layer` after the cached ones and returns views of all
  // cached keys/values [B, Hkv, length() + S, D]. length() moves on only with Advance(S), once every layer
  // has appended, so all layers of a step see the same offset.
  std::pair<at::Tensor, at::Tensor> Append(int64_t layer, const at::Tensor& k, const at::Tensor& v);
  void Advance(int64_t steps);

  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }

 private:
  std::vector<at::Tensor> keys_, values_;  // per layer [B, Hkv, capacity, D]
  int64_t length_ = 0;
  int64_t capacity_;
};

}  // namespace agora
