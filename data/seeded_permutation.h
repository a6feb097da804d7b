// A data order that is the same on every platform and standard library, for shuffles a checkpoint must replay.
#pragma once

#include <cstdint>
#include <vector>

namespace agora {

// A permutation of 0..n-1 drawn by Fisher-Yates from splitmix64(seed, stream): defined here bit for bit (unlike
// std::shuffle, whose algorithm the standard leaves to the library), so a data order is reproducible anywhere.
std::vector<int64_t> SeededPermutation(int64_t n, uint64_t seed, uint64_t stream);

}  // namespace agora
