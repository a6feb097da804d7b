// What a forward through the layers needs of a key/value cache, kept apart from the model so engines own and
// reuse caches while the model stays stateless. The cache itself is the engine's (models/slot_kv_cache.h).
#pragma once

#include <cstdint>
#include <utility>

#include <ATen/core/Tensor.h>

namespace agora {

// Each layer appends its new keys/values [B, Hkv, S, D] and attends over what comes back; Advance(S) once after
// every layer has appended, so all layers of a step see the same offset.
class KVCacheView {
 public:
  virtual ~KVCacheView() = default;
  // The position, in the keys Append returns, of this step's first query (the causal mask's offset).
  virtual int64_t query_offset() const = 0;
  virtual std::pair<at::Tensor, at::Tensor> Append(int64_t layer, const at::Tensor& k, const at::Tensor& v) = 0;
  virtual void Advance(int64_t steps) = 0;
};

}  // namespace agora
