// bitsandbytes' two code books and block sizes, spelled once for the ATen path (nf4_cpu.cpp) and the kernels
// (nf4_kernels.cuh copies them into __constant__ memory). No torch: nvcc compiles this.
//
// The values are bitsandbytes 0.50.2's float32 tables; nf4_cpu_test.cpp checks them against the oracle's copy of
// bnb.functional.get_4bit_type("nf4") and create_dynamic_map(signed=True).
#pragma once

#include <cstdint>

namespace agora::quant {

// Elements per NF4 block, each with its own absmax (bitsandbytes' QLoRA default, quantize_4bit(blocksize=64)).
inline constexpr int64_t kNf4BlockSize = 64;
// First-level absmax values per block of the double quantisation (quantize_blockwise(blocksize=256)).
inline constexpr int64_t kAbsmaxBlockSize = 256;

// NF4 (QLoRA, Dettmers et al. 2023, appendix E): the 16 values of an information-theoretically optimal 4-bit type
// for N(0, 1) weights scaled to [-1, 1]: quantiles of the normal distribution, 8 for the positive half and 7 for
// the negative, so that 0 is exactly representable. Sorted, so code index order is value order. Decimal strings
// as bitsandbytes writes them (functional.get_4bit_type), rounded to float32 by the compiler as by torch.tensor.
#define AGORA_NF4_CODE_VALUES                                                                                      \
  -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,               \
      -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,             \
      0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, \
      1.0f

// bitsandbytes' signed 8-bit "dynamic" type (create_dynamic_map(signed=True, max_exponent_bits=7), Dettmers 2015):
// for each decade 10^-6 .. 10^0 the midpoints of 2^i + 1 linearly spaced fractions in [0.1, 1], both signs, plus
// 0 and 1; sorted. Dense near 0, coarse near 1: the centred absmax values it stores are mostly small.
#define AGORA_DYNAMIC_MAP_VALUES \
  -0.99296874f, -0.9789063f, -0.96484375f, -0.9507812f, -0.93671876f, -0.92265624f, -0.9085938f, -0.89453125f, \
  -0.8804687f, -0.86640626f, -0.85234374f, -0.8382813f, -0.82421875f, -0.8101562f, -0.79609376f, -0.78203124f, \
  -0.7679688f, -0.75390625f, -0.7398437f, -0.72578126f, -0.7117188f, -0.6976563f, -0.68359375f, -0.6695312f, \
  -0.65546876f, -0.6414063f, -0.6273438f, -0.61328125f, -0.5992187f, -0.58515626f, -0.5710938f, -0.5570313f, \
  -0.54296875f, -0.5289062f, -0.5148437f, -0.50078124f, -0.4867187f, -0.47265625f, -0.45859373f, -0.44453126f, \
  -0.43046874f, -0.41640624f, -0.40234375f, -0.38828123f, -0.37421876f, -0.36015624f, -0.34609374f, -0.33203125f, \
  -0.31796873f, -0.30390626f, -0.28984374f, -0.27578127f, -0.26171875f, -0.24765624f, -0.23359375f, -0.21953125f, \
  -0.20546874f, -0.19140625f, -0.17734376f, -0.16328125f, -0.14921875f, -0.13515624f, -0.12109375f, \
  -0.107031256f, -0.09859375f, -0.09578126f, -0.092968754f, -0.09015625f, -0.08734375f, -0.08453125f, \
  -0.08171876f, -0.07890625f, -0.07609375f, -0.07328125f, -0.070468746f, -0.067656256f, -0.06484375f, \
  -0.06203125f, -0.059218753f, -0.05640625f, -0.05359375f, -0.05078125f, -0.04796875f, -0.04515625f, \
  -0.042343747f, -0.03953125f, -0.036718752f, -0.03390625f, -0.03109375f, -0.028281251f, -0.02546875f, \
  -0.02265625f, -0.019843752f, -0.01703125f, -0.01421875f, -0.01140625f, -0.00971875f, -0.009156249f, \
  -0.00859375f, -0.00803125f, -0.00746875f, -0.00690625f, -0.00634375f, -0.00578125f, -0.0052187503f, \
  -0.0046562497f, -0.00409375f, -0.0035312497f, -0.00296875f, -0.00240625f, -0.00184375f, -0.0012812499f, \
  -9.437501e-04f, -8.3125e-04f, -7.1875006e-04f, -6.062501e-04f, -4.9375003e-04f, -3.8125002e-04f, \
  -2.6875004e-04f, -1.5625001e-04f, -8.875e-05f, -6.625e-05f, -4.375e-05f, -2.1249998e-05f, -7.75e-06f, \
  -3.2500002e-06f, -5.5000004e-07f, 0.0f, 5.5000004e-07f, 3.2500002e-06f, 7.75e-06f, 2.1249998e-05f, 4.375e-05f, \
  6.625e-05f, 8.875e-05f, 1.5625001e-04f, 2.6875004e-04f, 3.8125002e-04f, 4.9375003e-04f, 6.062501e-04f, \
  7.1875006e-04f, 8.3125e-04f, 9.437501e-04f, 0.0012812499f, 0.00184375f, 0.00240625f, 0.00296875f, \
  0.0035312497f, 0.00409375f, 0.0046562497f, 0.0052187503f, 0.00578125f, 0.00634375f, 0.00690625f, 0.00746875f, \
  0.00803125f, 0.00859375f, 0.009156249f, 0.00971875f, 0.01140625f, 0.01421875f, 0.01703125f, 0.019843752f, \
  0.02265625f, 0.02546875f, 0.028281251f, 0.03109375f, 0.03390625f, 0.036718752f, 0.03953125f, 0.042343747f, \
  0.04515625f, 0.04796875f, 0.05078125f, 0.05359375f, 0.05640625f, 0.059218753f, 0.06203125f, 0.06484375f, \
  0.067656256f, 0.070468746f, 0.07328125f, 0.07609375f, 0.07890625f, 0.08171876f, 0.08453125f, 0.08734375f, \
  0.09015625f, 0.092968754f, 0.09578126f, 0.09859375f, 0.107031256f, 0.12109375f, 0.13515624f, 0.14921875f, \
  0.16328125f, 0.17734376f, 0.19140625f, 0.20546874f, 0.21953125f, 0.23359375f, 0.24765624f, 0.26171875f, \
  0.27578127f, 0.28984374f, 0.30390626f, 0.31796873f, 0.33203125f, 0.34609374f, 0.36015624f, 0.37421876f, \
  0.38828123f, 0.40234375f, 0.41640624f, 0.43046874f, 0.44453126f, 0.45859373f, 0.47265625f, 0.4867187f, \
  0.50078124f, 0.5148437f, 0.5289062f, 0.54296875f, 0.5570313f, 0.5710938f, 0.58515626f, 0.5992187f, 0.61328125f, \
  0.6273438f, 0.6414063f, 0.65546876f, 0.6695312f, 0.68359375f, 0.6976563f, 0.7117188f, 0.72578126f, 0.7398437f, \
  0.75390625f, 0.7679688f, 0.78203124f, 0.79609376f, 0.8101562f, 0.82421875f, 0.8382813f, 0.85234374f, \
  0.86640626f, 0.8804687f, 0.89453125f, 0.9085938f, 0.92265624f, 0.93671876f, 0.9507812f, 0.96484375f, \
  0.9789063f, 0.99296874f, 1.0f

inline constexpr float kNf4Code[16] = {AGORA_NF4_CODE_VALUES};
inline constexpr float kDynamicMap[256] = {AGORA_DYNAMIC_MAP_VALUES};

}  // namespace agora::quant
