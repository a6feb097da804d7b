// The NF4 kernels: dequantisation into a scratch buffer, and the fused dequantise + GEMV of decoding. Device code
// only (no torch); nf4_kernels.cu launches them, and the lab's warp emulator (nf4_emulation_test.cpp) compiles this
// file as host C++ and runs them on the CPU. Layout and roofline: NOTES.md.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/quant/code_books.h"
#include "kernels/quant/quant_kernels.h"

namespace agora::kernels::nf4 {

using quant::kAbsmaxBlockSize;
using quant::kNf4BlockSize;

// ---- what both kernels share ------------------------------------------------------------------------------------

// Each translation unit holds its own copy (no relocatable device code), initialised when the module loads.
static __constant__ float kNf4CodeConstant[16] = {AGORA_NF4_CODE_VALUES};
static __constant__ float kDynamicMapConstant[256] = {AGORA_DYNAMIC_MAP_VALUES};

// The code books as the kernels read them. Constant memory serves one address per cycle and a warp's lanes look up
// different codes, so every block copies both books (1.1 KB) into shared memory first. The 16 NF4 entries sit in
// 16 different banks: any 32 lookups complete in one shared-memory wavefront (equal addresses broadcast).
struct CodeBooks {
  float nf4[16];
  float dynamic_map[256];
};

// Every thread of the block calls it; it ends with the barrier that makes the books visible.
__device__ inline void LoadCodeBooks(CodeBooks& books) {
  for (int i = threadIdx.x; i < 256; i += blockDim.x) books.dynamic_map[i] = kDynamicMapConstant[i];
  if (threadIdx.x < 16) books.nf4[threadIdx.x] = kNf4CodeConstant[threadIdx.x];
  __syncthreads();
}

// The absmax of 64-block `block`: kDynamicMap[code] * absmax2 + offset, rounded after the product and after the
// sum as bitsandbytes (and the ATen path) compute it. __fmul_rn / __fadd_rn are never contracted into one FMA, which
// nvcc would otherwise do (one rounding instead of two: a last-bit difference in some scales).
__device__ inline float BlockAbsmax(const Nf4View& w, const CodeBooks& books, int64_t block) {
  const float centred = __fmul_rn(books.dynamic_map[w.absmax_codes[block]], w.absmax2[block / kAbsmaxBlockSize]);
  return __fadd_rn(centred, w.offset);
}

// The code book values of the 8 nibbles of a little-endian 32-bit word of `packed`: byte j holds element 2j in its
// high nibble and element 2j + 1 in its low one.
__device__ inline void DecodeWord(uint32_t word, const CodeBooks& books, float (&out)[8]) {
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    out[2 * j] = books.nf4[(word >> (8 * j + 4)) & 0xF];
    out[2 * j + 1] = books.nf4[(word >> (8 * j)) & 0xF];
  }
}

template <typename T>
__device__ inline T FromFloat(float v);
template <>
__device__ inline float FromFloat<float>(float v) {
  return v;
}
template <>
__device__ inline __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ inline __half FromFloat<__half>(float v) {
  return __float2half_rn(v);
}

__device__ inline float ToFloat(float v) { return v; }
__device__ inline float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ inline float ToFloat(__half v) { return __half2float(v); }

// 16 bytes of T: the widest load or store one thread issues.
template <typename T>
struct alignas(16) Pack16 {
  static constexpr int kSize = 16 / sizeof(T);
  T v[kSize];
};

// ---- dequantisation ---------------------------------------------------------------------------------------------
//
// The weight of a QLoRA projection back in bf16 (fp16, fp32) for a cuBLAS GEMM in training and prefill. Bound by
// memory: per element it reads half a byte of codes (plus 1/64 byte of absmax code and 1/4096 of absmax2) and writes
// 2 bytes (bf16), about 2.52 bytes in all, for one shared-memory lookup and one multiply; a 4096 x 4096 projection
// moves 42.2 MB, 12.6 us at an H100's 3.35 TB/s. So the design is about bytes in flight: each thread loads 16
// packed bytes at once (32 elements, half of one 64-block, so one absmax per thread) and stores its 32 outputs 16
// bytes at a time.

inline constexpr int kDequantizeThreads = 256;
inline constexpr int kChunkElements = 32;  // per thread and step: 16 packed bytes

template <typename T>
__global__ void __launch_bounds__(kDequantizeThreads) Nf4DequantizeKernel(const Nf4DequantizeParams p) {
  __shared__ CodeBooks books;
  LoadCodeBooks(books);
  constexpr int kPack = Pack16<T>::kSize;
  const int64_t chunks = p.weight.numel / kChunkElements;
  const uint4* packed = reinterpret_cast<const uint4*>(p.weight.packed);
  // Grid-stride: consecutive threads take consecutive 16-byte chunks, so a warp's loads are one contiguous 512 bytes.
  for (int64_t c = blockIdx.x * int64_t{kDequantizeThreads} + threadIdx.x; c < chunks;
       c += int64_t{gridDim.x} * kDequantizeThreads) {
    const uint4 bytes = packed[c];
    const float absmax = BlockAbsmax(p.weight, books, c * kChunkElements / kNf4BlockSize);
    const uint32_t words[4] = {bytes.x, bytes.y, bytes.z, bytes.w};
    float values[kChunkElements];
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      float codes[8];
      DecodeWord(words[w], books, codes);
#pragma unroll
      for (int j = 0; j < 8; ++j) values[8 * w + j] = __fmul_rn(codes[j], absmax);  // bitsandbytes' one rounding
    }
    Pack16<T>* out = reinterpret_cast<Pack16<T>*>(static_cast<T*>(p.out) + c * kChunkElements);
#pragma unroll
    for (int s = 0; s < kChunkElements / kPack; ++s) {
      Pack16<T> pack;
#pragma unroll
      for (int k = 0; k < kPack; ++k) pack.v[k] = FromFloat<T>(values[s * kPack + k]);
      out[s] = pack;
    }
  }
}

// ---- fused dequantise + GEMV --------------------------------------------------------------------------------------
//
// y[r, o] = sum_k W[o, k] x[r, k] for one to eight rows of x, the weight read once from its packed form and never
// written out. At decode time a projection's cost is reading its weight: 0.516 bytes per parameter here against
// bf16's 2 (NOTES.md: 2.6 us for 4096 x 4096 on an H100 at full bandwidth, against 10 us). x and y are a few KB.
//
// One warp per output feature o, eight warps per block. The reduction dimension is walked in tiles of 1024
// elements: the block stages x[:, tile] in shared memory once (every warp of the block needs the same x), then each
// lane takes 4-byte words of W's row (8 elements each), so a warp's loads are 128 contiguous bytes and a full tile of
// a row is exactly 32 lanes x 4 words. Per word:
//   dot_r = sum_j code[j] * x[r, k + j]   (float32), then acc[r] += absmax * dot_r;
// factoring the absmax out of the 8-element sum saves 7 multiplies per word and changes the rounding, not the value
// (the tests compare with float64 within the bf16/fp32 bounds). Finally each acc[r] is summed across the warp.

inline constexpr int kGemvWarps = 8;  // output features per block
inline constexpr int kGemvThreads = 32 * kGemvWarps;
inline constexpr int kGemvTile = 1024;  // elements of the reduction dimension per step: 32 lanes x 4 words x 8

template <typename T>
__global__ void __launch_bounds__(kGemvThreads) Nf4GemvKernel(const Nf4GemvParams p) {
  __shared__ CodeBooks books;
  __shared__ Pack16<T> x_tile[kNf4GemvMaxRows][kGemvTile / Pack16<T>::kSize];
  LoadCodeBooks(books);
  constexpr int kPack = Pack16<T>::kSize;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int64_t o = int64_t{blockIdx.x} * kGemvWarps + warp;
  // A warp past the last output feature still stages x and meets every barrier; it only skips the arithmetic.
  const bool active = o < p.out_features;
  const int64_t in = p.in_features;
  const T* x = static_cast<const T*>(p.x);

  float acc[kNf4GemvMaxRows] = {};
  for (int64_t k0 = 0; k0 < in; k0 += kGemvTile) {
    const int length = static_cast<int>(in - k0 < kGemvTile ? in - k0 : kGemvTile);  // a multiple of 8
    const int packs = length / kPack;
    __syncthreads();  // every warp is done with the previous tile
    for (int i = threadIdx.x; i < p.rows * packs; i += kGemvThreads) {
      const int r = i / packs;
      x_tile[r][i % packs] = reinterpret_cast<const Pack16<T>*>(x + r * in + k0)[i % packs];
    }
    __syncthreads();
    if (!active) continue;
    // Word w of the tile holds elements k0 + 8w .. k0 + 8w + 7 of row o; flat index o * in + k0 + 8w is a multiple
    // of 8 (in % 8 == 0), so the word is 4-byte aligned and lies in one 64-block.
#pragma unroll 4
    for (int w = lane; w < length / 8; w += 32) {
      const int64_t element = o * in + k0 + 8 * w;
      const uint32_t word = *reinterpret_cast<const uint32_t*>(p.weight.packed + element / 2);
      const float absmax = BlockAbsmax(p.weight, books, element / kNf4BlockSize);
      float codes[8];
      DecodeWord(word, books, codes);
#pragma unroll
      for (int r = 0; r < kNf4GemvMaxRows; ++r) {
        if (r >= p.rows) break;
        // The word's 8 x values: one 16-byte shared load for bf16/fp16 (consecutive lanes, consecutive 16 bytes: no
        // bank conflict), two for fp32.
        const Pack16<T>* xs = &x_tile[r][8 * w / kPack];
        float dot = 0.f;
#pragma unroll
        for (int half = 0; half < 8 / kPack; ++half) {
          const Pack16<T> v = xs[half];
#pragma unroll
          for (int j = 0; j < kPack; ++j) dot += codes[half * kPack + j] * ToFloat(v.v[j]);
        }
        acc[r] += absmax * dot;
      }
    }
  }
  if (!active) return;
#pragma unroll
  for (int r = 0; r < kNf4GemvMaxRows; ++r) {
    if (r >= p.rows) break;
    float sum = acc[r];
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (lane == 0) static_cast<T*>(p.y)[r * p.out_features + o] = FromFloat<T>(sum);
  }
}

}  // namespace agora::kernels::nf4
