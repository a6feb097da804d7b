// Automatic prefix caching for the generation engine: the keys/values of prompt blocks (block_size tokens),
// keyed by the content of the whole prompt up to the block's end (a hash chain, as vLLM's block hashes: a block's
// key folds its parent's key with its own tokens, and its tokens are kept to rule out collisions). A prompt that
// starts like an earlier one copies the cached blocks into its slot instead of recomputing them; the model's
// output is the same either way. Least recently used blocks go first when the cache is full.
//
// Blocks are copied into a sequence's slot rather than shared in place (a slot cache, not a paged one): the copy
// costs bytes where recomputing costs a forward over the prefix, which is what the simulators' shared principles,
// personas and scene descriptions would otherwise repeat for every request.
#pragma once

#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "models/slot_kv_cache.h"

namespace agora {

class PrefixCache {
 public:
  // max_blocks = 0 turns caching off.
  PrefixCache(int64_t block_size, int64_t max_blocks) : block_size_(block_size), max_blocks_(max_blocks) {}

  // Copies the longest cached prefix of `prompt` into `slot` (whose length becomes that prefix's) and returns its
  // length in tokens: whole blocks, and never the prompt's last token (its logits start the generation).
  // `weights` names what computed the keys/values (0: the model as it is, 1: its base with the adapters off), so
  // the same tokens under other weights never share blocks.
  int64_t Restore(const std::vector<int64_t>& prompt, SlotKVCache& cache, int64_t slot, uint64_t weights = 0);
  // Keeps the whole blocks of `prompt`'s first `computed` tokens, read from `slot`, that are not cached yet.
  void Remember(const std::vector<int64_t>& prompt, int64_t computed, const SlotKVCache& cache, int64_t slot,
                uint64_t weights = 0);

  int64_t blocks() const { return static_cast<int64_t>(entries_.size()); }
  int64_t block_size() const { return block_size_; }

 private:
  struct Entry {
    uint64_t parent;
    std::vector<int64_t> tokens;  // the block's own tokens
    std::vector<LayerKV> kv;
    std::list<uint64_t>::iterator recency;
  };
  // A block's key from its parent's (0 for the first block) and its own n tokens.
  static uint64_t BlockKey(uint64_t parent, const int64_t* tokens, int64_t n);
  // The cached block under `key` when it really is this parent's block of these tokens, else null.
  Entry* Find(uint64_t key, uint64_t parent, const int64_t* tokens);
  void Touch(Entry& entry, uint64_t key);

  int64_t block_size_, max_blocks_;
  std::unordered_map<uint64_t, Entry> entries_;
  std::list<uint64_t> recency_;  // most recently used first
};

}  // namespace agora
