// The plain parameter block of Agora's flash attention: raw pointers, element strides and sizes, nothing from torch
// or CUDA. The torch binding (flash_attention.cpp) packs it; the CUDA kernels (flash_attention_kernel.cuh) and the
// CPU lab reference (flash_attention_cpu.cpp) read it, so both walk the same tensors the same way.
#pragma once

#include <cstdint>

namespace agora::kernels {

// Tile sizes shared by the CUDA kernels and the CPU lab reference (which follows the same tiling).
// Forward: a block owns kFwdQueryTile query rows (16 per warp, 4 warps) and streams kFwdKeyTile keys at a time.
// Backward: a block owns kBwdKeyTile keys (16 per warp, 4 warps) and streams kBwdQueryTile queries at a time.
inline constexpr int kFwdQueryTile = 64;
inline constexpr int kFwdKeyTile = 64;
inline constexpr int kBwdKeyTile = 64;
inline constexpr int kBwdQueryTile = 32;
inline constexpr int kWarps = 4;

// CUDA allows at most 65535 blocks in a grid's y and z dimensions. The grids are (tiles of the longest sample,
// heads, batch x packed samples); the binding checks the last two before a launch, which past them would fail
// with only "invalid configuration argument".
inline constexpr int64_t kMaxGridBlocksYZ = 65535;

// Where a [batch, position, head, head_dim] tensor's elements live: element (b, s, h, d) is at
// b * batch + s * row + h * head + d (head_dim is contiguous). Covers both [B, H, S, D] tensors and the
// [B, S, H, D] memory that the model's q/k/v projections produce, without a copy.
struct Strides {
  int64_t batch = 0, row = 0, head = 0;
};

struct FlashAttentionParams {
  // Inputs, in the element type of the instantiation (bf16/fp16 on CUDA, float in the CPU lab).
  const void* q = nullptr;  // [B, S, Hq, D] per `q_strides`
  const void* k = nullptr;  // [B, S, Hkv, D]
  const void* v = nullptr;  // [B, S, Hkv, D]
  Strides q_strides, k_strides, v_strides;

  // Forward outputs.
  void* o = nullptr;      // [B, S, Hq, D] per `o_strides`
  float* lse = nullptr;   // [B, Hq, S] contiguous: log-sum-exp of each query's scaled scores (natural log)
  Strides o_strides;

  // Backward: inputs dout (like o), lse from the forward; outputs dq (like q), dk, dv (like k, v).
  const void* dout = nullptr;
  Strides dout_strides;
  void* dq = nullptr;
  void* dk = nullptr;
  void* dv = nullptr;
  Strides dq_strides, dk_strides, dv_strides;
  float* delta = nullptr;     // [B, Hq, S] scratch: rowsum(dout * o)
  float* dq_accum = nullptr;  // [B, S, Hq, D] fp32 scratch, zeroed, contiguous: dq summed over key tiles

  int batch = 0;
  int heads_q = 0;   // a multiple of heads_kv: query head h reads key/value head h / (heads_q / heads_kv)
  int heads_kv = 0;
  int seqlen = 0;    // positions per batch row (S)
  int head_dim = 0;

  // Packed samples: sample i of every batch row spans positions [cu_seqlens[i], cu_seqlens[i + 1]) and attends
  // only within itself. nullptr = one sample [0, seqlen). Device memory for the kernels, host memory for the lab.
  const int32_t* cu_seqlens = nullptr;
  int num_samples = 1;
  int max_seqlen = 0;  // the longest sample: sizes the grid

  float scale = 1.0f;  // softmax(scale * q k^T)
  bool causal = true;  // position i of a sample sees positions <= i of the same sample
};

}  // namespace agora::kernels
