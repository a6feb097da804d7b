#include "models/kv_cache.h"

#include <ATen/ATen.h>

namespace agora {

KVCache::KVCache(const LlamaConfig& config, int64_t batch, int64_t capacity, at::ScalarType dtype,
                 at::Device device)
    : capacity_(capacity) {
  auto options = at::TensorOptions().dtype(dtype).device(device);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    keys_.push_back(at::empty({batch, config.num_key_value_heads, capacity, config.head_dim}, options));
    values_.push_back(at::empty({batch, config.num_key_value_heads, capacity, config.head_dim}, options));
  }
}

std::pair<at::Tensor, at::Tensor> KVCache::Append(int64_t layer, const at::Tensor& k, const at::Tensor& v) {
  const int64_t steps = k.size(2);
  TORCH_CHECK(length_ + steps <= capacity_, "KVCache: ", length_, " + ", steps, " positions exceed capacity ",
              capacity_);
  keys_[layer].slice(2, length_, length_ + steps).copy_(k);
  values_[layer].slice(2, length_, length_ + steps).copy_(v);
  return {keys_[layer].slice(2, 0, length_ + steps), values_[layer].slice(2, 0, length_ + steps)};
}

void KVCache::Advance(int64_t steps) { length_ += steps; }

}  // namespace agora
