#include "models/prefix_cache.h"

#include <algorithm>

namespace agora {

uint64_t PrefixCache::BlockKey(uint64_t parent, const int64_t* tokens, int64_t n) {
  // FNV-1a over the parent key and the block's tokens: the key names the whole prefix, not just the block.
  uint64_t h = 1469598103934665603ull ^ parent;
  auto mix = [&h](uint64_t x) {
    for (int byte = 0; byte < 8; ++byte) {
      h ^= (x >> (8 * byte)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  mix(parent);
  for (int64_t i = 0; i < n; ++i) mix(static_cast<uint64_t>(tokens[i]));
  return h;
}

PrefixCache::Entry* PrefixCache::Find(uint64_t key, uint64_t parent, const int64_t* tokens) {
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.parent != parent ||
      !std::equal(it->second.tokens.begin(), it->second.tokens.end(), tokens))
    return nullptr;
  return &it->second;
}

void PrefixCache::Touch(Entry& entry, uint64_t key) {
  recency_.erase(entry.recency);
  recency_.push_front(key);
  entry.recency = recency_.begin();
}

int64_t PrefixCache::Restore(const std::vector<int64_t>& prompt, SlotKVCache& cache, int64_t slot,
                             uint64_t weights) {
  cache.Clear(slot);
  if (max_blocks_ == 0) return 0;
  const int64_t usable = (static_cast<int64_t>(prompt.size()) - 1) / block_size_;
  uint64_t parent = weights;  // the first block's parent: which weights computed the chain
  int64_t restored = 0;
  for (int64_t b = 0; b < usable; ++b) {
    const int64_t* tokens = prompt.data() + b * block_size_;
    const uint64_t key = BlockKey(parent, tokens, block_size_);
    Entry* entry = Find(key, parent, tokens);
    if (entry == nullptr) break;
    cache.Write(slot, restored, entry->kv);
    Touch(*entry, key);
    restored += block_size_;
    parent = key;
  }
  return restored;
}

void PrefixCache::Remember(const std::vector<int64_t>& prompt, int64_t computed, const SlotKVCache& cache,
                           int64_t slot, uint64_t weights) {
  if (max_blocks_ == 0) return;
  uint64_t parent = weights;  // the first block's parent: which weights computed the chain
  for (int64_t b = 0; (b + 1) * block_size_ <= computed; ++b) {
    const int64_t* tokens = prompt.data() + b * block_size_;
    const uint64_t key = BlockKey(parent, tokens, block_size_);
    if (Entry* entry = Find(key, parent, tokens)) {
      Touch(*entry, key);
    } else {
      if (entries_.count(key) > 0) break;  // a collision with another prefix: leave that one be
      while (static_cast<int64_t>(entries_.size()) >= max_blocks_) {
        entries_.erase(recency_.back());
        recency_.pop_back();
      }
      recency_.push_front(key);
      entries_.emplace(key, Entry{parent, std::vector<int64_t>(tokens, tokens + block_size_),
                                  cache.Read(slot, b * block_size_, (b + 1) * block_size_), recency_.begin()});
    }
    parent = key;
  }
}

}  // namespace agora
