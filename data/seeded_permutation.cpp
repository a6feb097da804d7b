#include "data/seeded_permutation.h"

#include <cstddef>
#include <utility>

namespace agora {
namespace {

// splitmix64 (Steele, Lea & Flood 2014): a tiny generator whose every output is a fixed function of its state.
uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

std::vector<int64_t> SeededPermutation(int64_t n, uint64_t seed, uint64_t stream) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  uint64_t state = seed;
  state = SplitMix64(state) ^ (stream * 0xd1b54a32d192ed03ULL);
  for (int64_t i = n - 1; i > 0; --i) {
    // Modulo bias is below 2^-40 for any dataset that fits in memory; not worth rejection sampling.
    const int64_t j = static_cast<int64_t>(SplitMix64(state) % static_cast<uint64_t>(i + 1));
    std::swap(p[i], p[j]);
  }
  return p;
}

}  // namespace agora
