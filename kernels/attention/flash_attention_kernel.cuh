// FlashAttention-2-style forward and backward kernels on sm_80+ tensor cores (mma.sync m16n8k16, bf16/fp16 in,
// fp32 accumulate). The same algorithm, tile for tile, is in flash_attention_cpu.cpp (the kernel lab's CPU
// reference, tested against float64 attention on any machine); read that first, this file adds the GPU mapping.
//
// Mapping. A thread block is 4 warps. Every matrix product is cut into 16x8x16 pieces, one mma.sync each, whose
// operands live in registers spread over the 32 lanes of a warp in the layout the PTX ISA fixes for m16n8k16
// ("Matrix fragments for mma.m16n8k16"): with g = lane / 4 and t = lane % 4,
//   A (16x16, row-major)  reg0 = A[g][2t..2t+1]   reg1 = A[g+8][2t..2t+1]
//                          reg2 = A[g][2t+8..+9]   reg3 = A[g+8][2t+8..+9]
//   B (16x8, k x n)        reg0 = B[2t..2t+1][g]   reg1 = B[2t+8..2t+9][g]
//   C (16x8, fp32)         c0,c1 = C[g][2t..2t+1]  c2,c3 = C[g+8][2t..2t+1]
// (two 16-bit elements per 32-bit register, the lower column/row index in the low half). The C layout of two
// neighbouring 16x8 accumulator tiles is exactly the A layout of one 16x16 operand, so softmax probabilities
// computed in registers feed the next product (P V, or P^T dO) without a trip through shared memory.
//
// Shared-memory tiles are row-major with rows padded by 8 elements: a warp's fragment loads then touch 32
// distinct banks (row stride D + 8 halves = (D/2 + 4) words, so rows g = 0..7 start 4 banks apart).
//
// The kernel lab also runs this header on the CPU (flash_attention_emulation_test.cpp, AGORA_FLASH_EMULATE): one
// std::thread per CUDA thread, barriers for __syncthreads and the warp collectives, and an mma that assembles the
// fragments by the PTX layout above. That checks every index of the mapping without a GPU.
//
// What v1 does not do yet (see NOTES.md "versions"): ldmatrix, cp.async double-buffering of K/V tiles, swizzled
// layouts, wgmma/TMA on sm_90a, skipping the mask arithmetic on interior tiles.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

#include "kernels/attention/flash_attention_launch.h"

namespace agora::kernels {
namespace flash {

constexpr float kLog2e = 1.4426950408889634f;
constexpr int kThreads = kWarps * 32;
constexpr int kPad = 8;  // elements of padding per shared-memory row

// ---- element types and the one tensor-core instruction ---------------------------------------------------------

template <Element E>
struct ElementTraits;

template <>
struct ElementTraits<Element::kBFloat16> {
  using T = __nv_bfloat16;
  static __device__ __forceinline__ uint32_t Pack(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
    uint32_t u;
    memcpy(&u, &h, 4);
    return u;
  }
  static __device__ __forceinline__ float ToFloat(T x) { return __bfloat162float(x); }
  // c += a b with a 16x16 (4 regs), b 16x8 (2 regs), c 16x8 fp32 (4 regs).
  static __device__ __forceinline__ void Mma(float c[4], const uint32_t a[4], const uint32_t b[2]) {
#ifdef AGORA_FLASH_EMULATE
    EmulatedMma<T>(c, a, b);
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
  }
};

template <>
struct ElementTraits<Element::kFloat16> {
  using T = __half;
  static __device__ __forceinline__ uint32_t Pack(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &h, 4);
    return u;
  }
  static __device__ __forceinline__ float ToFloat(T x) { return __half2float(x); }
  static __device__ __forceinline__ void Mma(float c[4], const uint32_t a[4], const uint32_t b[2]) {
#ifdef AGORA_FLASH_EMULATE
    EmulatedMma<T>(c, a, b);
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
  }
};

// ---- fragment loads from shared memory (layouts in the header comment) --------------------------------------

template <typename T>
__device__ __forceinline__ uint32_t Load32(const T* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

template <typename T>
__device__ __forceinline__ uint32_t Pair(T lo, T hi) {
  uint16_t l, h;
  memcpy(&l, &lo, 2);
  memcpy(&h, &hi, 2);
  return static_cast<uint32_t>(l) | (static_cast<uint32_t>(h) << 16);
}

// A = tile[m0 .. m0+15][k0 .. k0+15] of a row-major tile.
template <typename T>
__device__ __forceinline__ void LoadA(uint32_t a[4], const T* tile, int stride, int m0, int k0, int lane) {
  const int g = lane >> 2, t = lane & 3;
  const T* p = tile + (m0 + g) * stride + k0 + 2 * t;
  a[0] = Load32(p);
  a[1] = Load32(p + 8 * stride);
  a[2] = Load32(p + 8);
  a[3] = Load32(p + 8 * stride + 8);
}

// A = transpose of tile[k0 .. k0+15][m0 .. m0+15] (the tile holds A^T row-major).
template <typename T>
__device__ __forceinline__ void LoadATransposed(uint32_t a[4], const T* tile, int stride, int m0, int k0, int lane) {
  const int g = lane >> 2, t = lane & 3;
  const T* p = tile + (k0 + 2 * t) * stride + m0 + g;
  a[0] = Pair(p[0], p[stride]);
  a[1] = Pair(p[8], p[stride + 8]);
  a[2] = Pair(p[8 * stride], p[9 * stride]);
  a[3] = Pair(p[8 * stride + 8], p[9 * stride + 8]);
}

// B (k x n) = transpose of tile[n0 .. n0+7][k0 .. k0+15]: the tile is stored n-major, e.g. K in S = Q K^T.
template <typename T>
__device__ __forceinline__ void LoadBFromRows(uint32_t b[2], const T* tile, int stride, int n0, int k0, int lane) {
  const int g = lane >> 2, t = lane & 3;
  const T* p = tile + (n0 + g) * stride + k0 + 2 * t;
  b[0] = Load32(p);
  b[1] = Load32(p + 8);
}

// B (k x n) = tile[k0 .. k0+15][n0 .. n0+7]: the tile is stored k-major, e.g. V in O = P V.
template <typename T>
__device__ __forceinline__ void LoadBFromColumns(uint32_t b[2], const T* tile, int stride, int k0, int n0, int lane) {
  const int g = lane >> 2, t = lane & 3;
  const T* p = tile + (k0 + 2 * t) * stride + n0 + g;
  b[0] = Pair(p[0], p[stride]);
  b[1] = Pair(p[8 * stride], p[9 * stride]);
}

// The A operand (16 x 16) made of accumulator tiles c[2kk] and c[2kk+1] (16 x 8 each), rounded to the input type.
template <Element E>
__device__ __forceinline__ void AccumulatorsToA(uint32_t a[4], const float lo[4], const float hi[4]) {
  a[0] = ElementTraits<E>::Pack(lo[0], lo[1]);
  a[1] = ElementTraits<E>::Pack(lo[2], lo[3]);
  a[2] = ElementTraits<E>::Pack(hi[0], hi[1]);
  a[3] = ElementTraits<E>::Pack(hi[2], hi[3]);
}

// ---- global <-> shared ------------------------------------------------------------------------------------------

// rows x D elements from global rows [row0, row0 + rows) of one head into a padded shared tile; rows at or past
// `valid_rows` are zero (they are masked later; zero keeps garbage and NaN out of the products).
template <typename T, int D>
__device__ __forceinline__ void LoadTile(T* tile, const T* base, int64_t row_stride, int rows, int valid_rows) {
  constexpr int kChunks = D / 8;  // 16-byte vectors per row
  for (int i = threadIdx.x; i < rows * kChunks; i += kThreads) {
    const int r = i / kChunks, c = (i % kChunks) * 8;
    uint4 value = make_uint4(0, 0, 0, 0);
    if (r < valid_rows) value = *reinterpret_cast<const uint4*>(base + r * row_stride + c);
    *reinterpret_cast<uint4*>(tile + r * (D + kPad) + c) = value;
  }
}

// This block's sample: [begin, begin + len) of batch row `b`.
struct Sample {
  int b, begin, len;
};

__device__ __forceinline__ Sample SampleOfBlock(const FlashAttentionParams& p) {
  const int b = blockIdx.z / p.num_samples, i = blockIdx.z % p.num_samples;
  const int begin = p.cu_seqlens ? p.cu_seqlens[i] : 0;
  const int end = p.cu_seqlens ? p.cu_seqlens[i + 1] : p.seqlen;
  return {b, begin, end - begin};
}

template <typename T>
__device__ __forceinline__ T* At(T* base, const Strides& s, int b, int pos, int h) {
  return base + b * s.batch + pos * s.row + h * s.head;
}

// ---- forward ------------------------------------------------------------------------------------------------------

// The query tile block `block` of `blocks` computes. A causal tile at the end of a sample sees every key before it,
// the first tile only its own: blocks start roughly in blockIdx.x order, so causal blocks take the tiles from the
// end (FlashAttention-2's order) and the last wave is made of light tiles instead of one heavy tile running alone.
__host__ __device__ __forceinline__ int ForwardQueryTile(int block, int blocks, bool causal) {
  return causal ? blocks - 1 - block : block;
}

// Grid (query tiles, query heads, batch * samples). Warp w owns query rows [16w, 16w + 16) of the block's tile and
// keeps their Q fragments, running max m, running sum l and output accumulator in registers while K/V tiles of
// kFwdKeyTile keys stream through shared memory. Each thread holds two rows: g and g + 8.
template <Element E, int D, bool Causal>
__global__ void __launch_bounds__(kThreads) FlashForwardKernel(const FlashAttentionParams p) {
  using Traits = ElementTraits<E>;
  using T = typename Traits::T;
  constexpr int kStride = D + kPad;
  constexpr int kNTiles = kFwdKeyTile / 8;  // 8-key accumulator tiles of S
  constexpr int kDTiles = D / 8;            // 8-column accumulator tiles of O
  static_assert(kFwdQueryTile == 16 * kWarps && kFwdKeyTile % 16 == 0 && D % 16 == 0);

  const Sample s = SampleOfBlock(p);
  const int q0 = ForwardQueryTile(blockIdx.x, gridDim.x, Causal) * kFwdQueryTile;
  if (q0 >= s.len) return;  // a tile past the end of a short sample (the grid is sized for the longest)
  const int h = blockIdx.y, hk = h / (p.heads_q / p.heads_kv);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;

  extern __shared__ __align__(16) unsigned char smem[];
  T* q_tile = reinterpret_cast<T*>(smem);
  T* k_tile = q_tile + kFwdQueryTile * kStride;
  T* v_tile = k_tile + kFwdKeyTile * kStride;

  const T* q = At(static_cast<const T*>(p.q), p.q_strides, s.b, s.begin + q0, h);
  LoadTile<T, D>(q_tile, q, p.q_strides.row, kFwdQueryTile, s.len - q0);
  __syncthreads();
  uint32_t q_frag[D / 16][4];
  for (int kd = 0; kd < D / 16; ++kd) LoadA(q_frag[kd], q_tile, kStride, 16 * warp, 16 * kd, lane);

  // Scores in log2 units: t = s * scale * log2e, so every exponential is one exp2 (ex2.approx).
  const float scale_log2 = p.scale * kLog2e;
  float m[2] = {-INFINITY, -INFINITY};  // running max of rows g and g + 8
  float l[2] = {0.f, 0.f};              // this thread's share of the running sums (reduced over the quad at the end)
  float o_acc[kDTiles][4] = {};
  const int row[2] = {q0 + 16 * warp + g, q0 + 16 * warp + g + 8};  // offsets in the sample

  // A causal tile sees no key past its last query row.
  const int k_stop = Causal ? min(s.len, q0 + kFwdQueryTile) : s.len;
  for (int k0 = 0; k0 < k_stop; k0 += kFwdKeyTile) {
    __syncthreads();  // every warp is done with the previous K/V tile
    LoadTile<T, D>(k_tile, At(static_cast<const T*>(p.k), p.k_strides, s.b, s.begin + k0, hk), p.k_strides.row,
                   kFwdKeyTile, s.len - k0);
    LoadTile<T, D>(v_tile, At(static_cast<const T*>(p.v), p.v_strides, s.b, s.begin + k0, hk), p.v_strides.row,
                   kFwdKeyTile, s.len - k0);
    __syncthreads();

    // S = Q K^T for this warp's 16 rows and the tile's keys.
    float s_acc[kNTiles][4] = {};
    for (int kd = 0; kd < D / 16; ++kd)
      for (int n = 0; n < kNTiles; ++n) {
        uint32_t b[2];
        LoadBFromRows(b, k_tile, kStride, 8 * n, 16 * kd, lane);
        Traits::Mma(s_acc[n], q_frag[kd], b);
      }

    // Scale, mask (keys past the sample end, and the future under Causal), and the tile's row maxima.
    float tile_max[2] = {-INFINITY, -INFINITY};
    for (int n = 0; n < kNTiles; ++n)
      for (int r = 0; r < 4; ++r) {
        const int col = k0 + 8 * n + 2 * t + (r & 1);
        const bool visible = col < s.len && (!Causal || col <= row[r >> 1]);
        s_acc[n][r] = visible ? s_acc[n][r] * scale_log2 : -INFINITY;
        tile_max[r >> 1] = fmaxf(tile_max[r >> 1], s_acc[n][r]);
      }
    // The four lanes of a quad (same g) hold one row between them: reduce across them.
    for (int i = 0; i < 2; ++i) {
      tile_max[i] = fmaxf(tile_max[i], __shfl_xor_sync(0xffffffff, tile_max[i], 1));
      tile_max[i] = fmaxf(tile_max[i], __shfl_xor_sync(0xffffffff, tile_max[i], 2));
    }

    // Online softmax: rescale what was accumulated under the old max, add this tile's exp2(t - m_new).
    for (int i = 0; i < 2; ++i) {
      const float m_new = fmaxf(m[i], tile_max[i]);
      // A row that has seen nothing visible yet keeps everything at zero (exp2(-inf - 0) = 0, never NaN).
      const float base = m_new == -INFINITY ? 0.f : m_new;
      const float correction = exp2f(m[i] - base);
      l[i] *= correction;
      for (int d = 0; d < kDTiles; ++d) {
        o_acc[d][2 * i] *= correction;
        o_acc[d][2 * i + 1] *= correction;
      }
      for (int n = 0; n < kNTiles; ++n) {
        s_acc[n][2 * i] = exp2f(s_acc[n][2 * i] - base);
        s_acc[n][2 * i + 1] = exp2f(s_acc[n][2 * i + 1] - base);
        l[i] += s_acc[n][2 * i] + s_acc[n][2 * i + 1];
      }
      m[i] = m_new;
    }

    // O += P V: P (rounded to the input type, as FA2 does) goes straight from the accumulators to A operands.
    for (int kk = 0; kk < kFwdKeyTile / 16; ++kk) {
      uint32_t a[4];
      AccumulatorsToA<E>(a, s_acc[2 * kk], s_acc[2 * kk + 1]);
      for (int d = 0; d < kDTiles; ++d) {
        uint32_t b[2];
        LoadBFromColumns(b, v_tile, kStride, 16 * kk, 8 * d, lane);
        Traits::Mma(o_acc[d], a, b);
      }
    }
  }

  // Finish: l summed over the quad, O = acc / l, lse = (m + log2 l) / log2e in natural-log units.
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffff, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffff, l[i], 2);
    if (row[i] >= s.len) continue;
    const float inv_l = 1.f / l[i];
    T* o = At(static_cast<T*>(p.o), p.o_strides, s.b, s.begin + row[i], h);
    for (int d = 0; d < kDTiles; ++d)
      *reinterpret_cast<uint32_t*>(o + 8 * d + 2 * t) =
          Traits::Pack(o_acc[d][2 * i] * inv_l, o_acc[d][2 * i + 1] * inv_l);
    if (t == 0)
      p.lse[(static_cast<int64_t>(s.b) * p.heads_q + h) * p.seqlen + s.begin + row[i]] =
          (m[i] + log2f(l[i])) / kLog2e;
  }
}

// ---- backward -----------------------------------------------------------------------------------------------------

// delta = rowsum(dO * O), one warp per (batch, position, head) row.
template <Element E, int D>
__global__ void __launch_bounds__(kThreads) FlashBackwardDeltaKernel(const FlashAttentionParams p) {
  using Traits = ElementTraits<E>;
  using T = typename Traits::T;
  const int64_t rows = static_cast<int64_t>(p.batch) * p.seqlen * p.heads_q;
  const int lane = threadIdx.x % 32;
  for (int64_t r = blockIdx.x * int64_t{kWarps} + threadIdx.x / 32; r < rows; r += gridDim.x * int64_t{kWarps}) {
    const int h = r % p.heads_q, pos = (r / p.heads_q) % p.seqlen, b = r / (int64_t{p.heads_q} * p.seqlen);
    const T* dout = At(static_cast<const T*>(p.dout), p.dout_strides, b, pos, h);
    const T* o = At(static_cast<const T*>(p.o), p.o_strides, b, pos, h);
    float sum = 0.f;
    for (int d = lane; d < D; d += 32) sum += Traits::ToFloat(dout[d]) * Traits::ToFloat(o[d]);
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffff, sum, offset);
    if (lane == 0) p.delta[(static_cast<int64_t>(b) * p.heads_q + h) * p.seqlen + pos] = sum;
  }
}

// Grid (key tiles, key/value heads, batch * samples). Warp w owns keys [16w, 16w + 16) of the block's tile and
// keeps their dK and dV accumulators in registers over every query head of the group and every query tile; Q and
// dO tiles of kBwdQueryTile rows stream through shared memory. The kernel computes transposed products so that
// keys are the M dimension: S^T = K Q^T, dP^T = V dO^T, then dV += P^T dO and dK += dS^T Q. dQ needs a sum
// over all of the block's keys, so dS^T goes to shared memory and the four warps split dQ's columns between them,
// adding into the fp32 dq_accum with atomics (other key tiles add to the same rows).
template <Element E, int D, bool Causal>
__global__ void __launch_bounds__(kThreads) FlashBackwardKernel(const FlashAttentionParams p) {
  using Traits = ElementTraits<E>;
  using T = typename Traits::T;
  constexpr int kStride = D + kPad;
  constexpr int kDsStride = kBwdQueryTile + kPad;
  constexpr int kQTiles = kBwdQueryTile / 8;  // 8-query accumulator tiles of S^T
  constexpr int kDTiles = D / 8;
  constexpr int kDqColumns = D / kWarps;      // dQ columns per warp
  static_assert(kBwdKeyTile == 16 * kWarps && kBwdQueryTile % 16 == 0 && kDqColumns % 8 == 0);

  const Sample s = SampleOfBlock(p);
  const int k0 = blockIdx.x * kBwdKeyTile;
  if (k0 >= s.len) return;
  const int hk = blockIdx.y, group = p.heads_q / p.heads_kv;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;

  extern __shared__ __align__(16) unsigned char smem[];
  T* k_tile = reinterpret_cast<T*>(smem);
  T* v_tile = k_tile + kBwdKeyTile * kStride;
  T* q_tile = v_tile + kBwdKeyTile * kStride;
  T* do_tile = q_tile + kBwdQueryTile * kStride;
  T* ds_tile = do_tile + kBwdQueryTile * kStride;  // dS^T: [key][query]
  float* lse_tile = reinterpret_cast<float*>(ds_tile + kBwdKeyTile * kDsStride);  // lse * log2e
  float* delta_tile = lse_tile + kBwdQueryTile;

  LoadTile<T, D>(k_tile, At(static_cast<const T*>(p.k), p.k_strides, s.b, s.begin + k0, hk), p.k_strides.row,
                 kBwdKeyTile, s.len - k0);
  LoadTile<T, D>(v_tile, At(static_cast<const T*>(p.v), p.v_strides, s.b, s.begin + k0, hk), p.v_strides.row,
                 kBwdKeyTile, s.len - k0);

  const float scale_log2 = p.scale * kLog2e;
  float dk_acc[kDTiles][4] = {};
  float dv_acc[kDTiles][4] = {};
  const int key[2] = {k0 + 16 * warp + g, k0 + 16 * warp + g + 8};  // this thread's two keys (sample offsets)

  // Causal: queries before the tile's first key see none of its keys.
  const int q_start = Causal ? k0 / kBwdQueryTile * kBwdQueryTile : 0;
  for (int h = hk * group; h < (hk + 1) * group; ++h) {
    const int64_t lse_row = (static_cast<int64_t>(s.b) * p.heads_q + h) * p.seqlen + s.begin;
    for (int q0 = q_start; q0 < s.len; q0 += kBwdQueryTile) {
      __syncthreads();  // every warp is done with the previous Q/dO/dS tiles (and K/V are loaded, first time)
      LoadTile<T, D>(q_tile, At(static_cast<const T*>(p.q), p.q_strides, s.b, s.begin + q0, h), p.q_strides.row,
                     kBwdQueryTile, s.len - q0);
      LoadTile<T, D>(do_tile, At(static_cast<const T*>(p.dout), p.dout_strides, s.b, s.begin + q0, h),
                     p.dout_strides.row, kBwdQueryTile, s.len - q0);
      for (int i = threadIdx.x; i < kBwdQueryTile; i += kThreads) {
        const bool valid = q0 + i < s.len;
        lse_tile[i] = valid ? p.lse[lse_row + q0 + i] * kLog2e : 0.f;
        delta_tile[i] = valid ? p.delta[lse_row + q0 + i] : 0.f;
      }
      __syncthreads();

      // S^T = K Q^T and dP^T = V dO^T for this warp's 16 keys and the tile's queries.
      float st[kQTiles][4] = {}, dpt[kQTiles][4] = {};
      for (int kd = 0; kd < D / 16; ++kd) {
        uint32_t a_k[4], a_v[4];
        LoadA(a_k, k_tile, kStride, 16 * warp, 16 * kd, lane);
        LoadA(a_v, v_tile, kStride, 16 * warp, 16 * kd, lane);
        for (int n = 0; n < kQTiles; ++n) {
          uint32_t b[2];
          LoadBFromRows(b, q_tile, kStride, 8 * n, 16 * kd, lane);
          Traits::Mma(st[n], a_k, b);
          LoadBFromRows(b, do_tile, kStride, 8 * n, 16 * kd, lane);
          Traits::Mma(dpt[n], a_v, b);
        }
      }

      // P^T = exp2(t - lse*log2e) recomputed (0 where masked); dS^T = P^T * (dP^T - delta). st becomes P^T and
      // dpt becomes dS^T in place. dS^T also goes to shared memory for dQ.
      for (int n = 0; n < kQTiles; ++n) {
        for (int r = 0; r < 4; ++r) {
          const int qi = 8 * n + 2 * t + (r & 1), kj = key[r >> 1];
          const bool visible = q0 + qi < s.len && kj < s.len && (!Causal || kj <= q0 + qi);
          const float pt = visible ? exp2f(st[n][r] * scale_log2 - lse_tile[qi]) : 0.f;
          st[n][r] = pt;
          dpt[n][r] = pt * (dpt[n][r] - delta_tile[qi]);
        }
        T* ds = ds_tile + (16 * warp + g) * kDsStride + 8 * n + 2 * t;
        *reinterpret_cast<uint32_t*>(ds) = Traits::Pack(dpt[n][0], dpt[n][1]);
        *reinterpret_cast<uint32_t*>(ds + 8 * kDsStride) = Traits::Pack(dpt[n][2], dpt[n][3]);
      }

      // dV += P^T dO and dK += dS^T Q (the scale is applied once at the end).
      for (int kk = 0; kk < kBwdQueryTile / 16; ++kk) {
        uint32_t a_p[4], a_ds[4];
        AccumulatorsToA<E>(a_p, st[2 * kk], st[2 * kk + 1]);
        AccumulatorsToA<E>(a_ds, dpt[2 * kk], dpt[2 * kk + 1]);
        for (int d = 0; d < kDTiles; ++d) {
          uint32_t b[2];
          LoadBFromColumns(b, do_tile, kStride, 16 * kk, 8 * d, lane);
          Traits::Mma(dv_acc[d], a_p, b);
          LoadBFromColumns(b, q_tile, kStride, 16 * kk, 8 * d, lane);
          Traits::Mma(dk_acc[d], a_ds, b);
        }
      }
      __syncthreads();  // dS^T of all four warps is in shared memory

      // dQ (queries x D) += dS K over the block's keys: warp w takes columns [w * kDqColumns, (w + 1) * kDqColumns).
      for (int mq = 0; mq < kBwdQueryTile / 16; ++mq) {
        float dq_acc[kDqColumns / 8][4] = {};
        for (int kk = 0; kk < kBwdKeyTile / 16; ++kk) {
          uint32_t a[4];
          LoadATransposed(a, ds_tile, kDsStride, 16 * mq, 16 * kk, lane);
          for (int n = 0; n < kDqColumns / 8; ++n) {
            uint32_t b[2];
            LoadBFromColumns(b, k_tile, kStride, 16 * kk, warp * kDqColumns + 8 * n, lane);
            Traits::Mma(dq_acc[n], a, b);
          }
        }
        for (int r = 0; r < 2; ++r) {
          const int qi = q0 + 16 * mq + g + 8 * r;
          if (qi >= s.len) continue;
          float* dq = p.dq_accum + ((static_cast<int64_t>(s.b) * p.seqlen + s.begin + qi) * p.heads_q + h) * D +
                      warp * kDqColumns + 2 * t;
          for (int n = 0; n < kDqColumns / 8; ++n) {
            atomicAdd(dq + 8 * n, dq_acc[n][2 * r] * p.scale);
            atomicAdd(dq + 8 * n + 1, dq_acc[n][2 * r + 1] * p.scale);
          }
        }
      }
    }
  }

  // dK = scale * sum dS^T Q, dV = sum P^T dO, for this warp's keys inside the sample.
  for (int i = 0; i < 2; ++i) {
    if (key[i] >= s.len) continue;
    T* dk = At(static_cast<T*>(p.dk), p.dk_strides, s.b, s.begin + key[i], hk);
    T* dv = At(static_cast<T*>(p.dv), p.dv_strides, s.b, s.begin + key[i], hk);
    for (int d = 0; d < kDTiles; ++d) {
      *reinterpret_cast<uint32_t*>(dk + 8 * d + 2 * t) =
          Traits::Pack(dk_acc[d][2 * i] * p.scale, dk_acc[d][2 * i + 1] * p.scale);
      *reinterpret_cast<uint32_t*>(dv + 8 * d + 2 * t) = Traits::Pack(dv_acc[d][2 * i], dv_acc[d][2 * i + 1]);
    }
  }
}

// dq = dq_accum (fp32, contiguous [B, S, Hq, D]) in the input type, at dq's strides.
template <Element E, int D>
__global__ void __launch_bounds__(kThreads) FlashBackwardConvertDqKernel(const FlashAttentionParams p) {
  using T = typename ElementTraits<E>::T;
  const int64_t total = static_cast<int64_t>(p.batch) * p.seqlen * p.heads_q * D;
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < total; i += gridDim.x * int64_t{kThreads}) {
    const int d = i % D, h = (i / D) % p.heads_q;
    const int pos = (i / (int64_t{D} * p.heads_q)) % p.seqlen, b = i / (int64_t{D} * p.heads_q * p.seqlen);
    At(static_cast<T*>(p.dq), p.dq_strides, b, pos, h)[d] = static_cast<T>(p.dq_accum[i]);
  }
}

// ---- launch -------------------------------------------------------------------------------------------------------

// Kernels with more than 48 KiB of dynamic shared memory must say so once before their first launch.
template <typename Kernel>
cudaError_t AllowSharedMemory(Kernel kernel, size_t bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

// Forward: (query tiles of the longest sample, query heads, batch x samples).
inline dim3 ForwardGrid(const FlashAttentionParams& p) {
  return dim3((p.max_seqlen + kFwdQueryTile - 1) / kFwdQueryTile, p.heads_q, p.batch * p.num_samples);
}

// Backward: (key tiles of the longest sample, key/value heads, batch x samples).
inline dim3 BackwardGrid(const FlashAttentionParams& p) {
  return dim3((p.max_seqlen + kBwdKeyTile - 1) / kBwdKeyTile, p.heads_kv, p.batch * p.num_samples);
}

inline int RowBlocks(int64_t rows, int per_block) {
  const int64_t blocks = (rows + per_block - 1) / per_block;
  return static_cast<int>(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

}  // namespace flash

#ifndef AGORA_FLASH_EMULATE  // the lab's warp emulator (flash_attention_emulation_test.cpp) runs the kernels itself
template <Element E, int HeadDim>
cudaError_t LaunchFlashForward(const FlashAttentionParams& p, cudaStream_t stream) {
  using T = typename flash::ElementTraits<E>::T;
  const size_t smem = sizeof(T) * (kFwdQueryTile + 2 * kFwdKeyTile) * (HeadDim + flash::kPad);
  const dim3 grid = flash::ForwardGrid(p);
  auto kernel = p.causal ? flash::FlashForwardKernel<E, HeadDim, true> : flash::FlashForwardKernel<E, HeadDim, false>;
  if (cudaError_t e = flash::AllowSharedMemory(kernel, smem); e != cudaSuccess) return e;
  kernel<<<grid, flash::kThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

template <Element E, int HeadDim>
cudaError_t LaunchFlashBackward(const FlashAttentionParams& p, cudaStream_t stream) {
  using T = typename flash::ElementTraits<E>::T;
  const int64_t rows = static_cast<int64_t>(p.batch) * p.seqlen * p.heads_q;
  flash::FlashBackwardDeltaKernel<E, HeadDim><<<flash::RowBlocks(rows, kWarps), flash::kThreads, 0, stream>>>(p);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;

  const size_t smem = sizeof(T) * ((2 * kBwdKeyTile + 2 * kBwdQueryTile) * (HeadDim + flash::kPad) +
                                   kBwdKeyTile * (kBwdQueryTile + flash::kPad)) +
                      sizeof(float) * 2 * kBwdQueryTile;
  const dim3 grid = flash::BackwardGrid(p);
  auto kernel = p.causal ? flash::FlashBackwardKernel<E, HeadDim, true> : flash::FlashBackwardKernel<E, HeadDim, false>;
  if (cudaError_t e = flash::AllowSharedMemory(kernel, smem); e != cudaSuccess) return e;
  kernel<<<grid, flash::kThreads, smem, stream>>>(p);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;

  flash::FlashBackwardConvertDqKernel<E, HeadDim>
      <<<flash::RowBlocks(rows * HeadDim, flash::kThreads), flash::kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}
#endif

}  // namespace agora::kernels
