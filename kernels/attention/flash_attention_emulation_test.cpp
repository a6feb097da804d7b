// The kernel lab's warp emulator: the CUDA kernels of flash_attention_kernel.cuh compiled as host C++ and run on the
// CPU, one std::thread per CUDA thread, with barriers standing in for __syncthreads and for the warp collectives
// (shuffles, and mma.sync, whose fragments are assembled here by the PTX ISA's m16n8k16 layout). The results are
// checked against float64 attention with the GPU test's bounds, so every index of the kernels' mapping (fragments,
// tiles, masks, samples, GQA, strides) is tested on machines without a GPU. What it cannot check: the PTX string
// itself, timing-dependent hazards (compute-sanitizer racecheck does that on the GPU), and speed.
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "kernels/attention/flash_attention_params.h"

// ---- what nvcc provides and g++ does not ----------------------------------------------------------------------------

thread_local uint3 threadIdx, blockIdx;
thread_local dim3 gridDim;

namespace agora::kernels::flash {

constexpr int kEmulatedThreads = kWarps * 32;
alignas(16) unsigned char smem[160 * 1024];  // the running block's dynamic shared memory (blocks run one by one)

std::barrier<>* block_barrier = nullptr;
std::barrier<>* warp_barrier[kWarps] = {};
float shuffle_exchange[kWarps][32];
uint32_t mma_a[kWarps][32][4], mma_b[kWarps][32][2];

int Lane() { return threadIdx.x % 32; }
int Warp() { return threadIdx.x / 32; }

template <typename T>
float Half16(uint32_t reg, int which) {
  const uint16_t bits = static_cast<uint16_t>(which ? reg >> 16 : reg & 0xffff);
  T x;
  std::memcpy(static_cast<void*>(&x), &bits, 2);
  return static_cast<float>(x);
}

// c += A B with A (16x16) and B (16x8) gathered from the 32 lanes' registers:
//   A[row][k]: lane (row % 8) * 4 + (k % 8) / 2, register (row >= 8) + 2 * (k >= 8), half k % 2;
//   B[k][col]: lane col * 4 + (k % 8) / 2, register (k >= 8), half k % 2;
//   C[row][col] of this lane: row = lane / 4 + 8 * (r >= 2), col = 2 * (lane % 4) + r % 2 for c[r].
template <typename T>
void EmulatedMma(float c[4], const uint32_t a[4], const uint32_t b[2]) {
  const int w = Warp(), lane = Lane();
  std::memcpy(mma_a[w][lane], a, sizeof(uint32_t) * 4);
  std::memcpy(mma_b[w][lane], b, sizeof(uint32_t) * 2);
  warp_barrier[w]->arrive_and_wait();
  for (int r = 0; r < 4; ++r) {
    const int row = lane / 4 + 8 * (r >= 2), col = 2 * (lane % 4) + r % 2;
    float sum = c[r];
    for (int k = 0; k < 16; ++k) {
      const float av = Half16<T>(mma_a[w][(row % 8) * 4 + (k % 8) / 2][(row >= 8) + 2 * (k >= 8)], k % 2);
      const float bv = Half16<T>(mma_b[w][col * 4 + (k % 8) / 2][k >= 8], k % 2);
      sum += av * bv;
    }
    c[r] = sum;
  }
  warp_barrier[w]->arrive_and_wait();  // nobody overwrites the exchange while others still read it
}

}  // namespace agora::kernels::flash

float __shfl_xor_sync(unsigned /*mask*/, float value, int lane_mask) {
  using namespace agora::kernels::flash;
  const int w = Warp(), lane = Lane();
  shuffle_exchange[w][lane] = value;
  warp_barrier[w]->arrive_and_wait();
  const float other = shuffle_exchange[w][lane ^ lane_mask];
  warp_barrier[w]->arrive_and_wait();
  return other;
}

void __syncthreads() { agora::kernels::flash::block_barrier->arrive_and_wait(); }

float atomicAdd(float* address, float value) { return std::atomic_ref<float>(*address).fetch_add(value); }

using std::min;

#define AGORA_FLASH_EMULATE
#define __launch_bounds__(...)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wattributes"  // __device__, __launch_bounds__ ... mean nothing to g++
#include "kernels/attention/flash_attention_kernel.cuh"
#pragma GCC diagnostic pop

#include "kernels/attention/attention_test_reference.h"

namespace agora::kernels {
namespace {

using testing::Case;

// Runs `kernel` over `grid` with kEmulatedThreads threads per block, block after block.
void Run(void (*kernel)(FlashAttentionParams), dim3 grid, const FlashAttentionParams& p) {
  std::barrier<> block(flash::kEmulatedThreads);
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  for (int w = 0; w < kWarps; ++w) {
    warps.push_back(std::make_unique<std::barrier<>>(32));
    flash::warp_barrier[w] = warps.back().get();
  }
  flash::block_barrier = &block;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        std::memset(flash::smem, 0xff, sizeof flash::smem);  // NaN-like garbage: shared memory starts undefined
        std::vector<std::thread> threads;
        for (int t = 0; t < flash::kEmulatedThreads; ++t)
          threads.emplace_back([&, t] {
            threadIdx = {static_cast<unsigned>(t), 0, 0};
            blockIdx = {x, y, z};
            gridDim = grid;
            kernel(p);
          });
        for (std::thread& t : threads) t.join();
      }
}

template <Element E, int D>
void RunForward(const FlashAttentionParams& p) {
  Run(p.causal ? flash::FlashForwardKernel<E, D, true> : flash::FlashForwardKernel<E, D, false>, flash::ForwardGrid(p),
      p);
}

template <Element E, int D>
void RunBackward(const FlashAttentionParams& p) {
  Run(flash::FlashBackwardDeltaKernel<E, D>, dim3(3), p);  // grid-stride kernels: any grid covers every row
  Run(p.causal ? flash::FlashBackwardKernel<E, D, true> : flash::FlashBackwardKernel<E, D, false>,
      flash::BackwardGrid(p), p);
  Run(flash::FlashBackwardConvertDqKernel<E, D>, dim3(5), p);
}

template <Element E, int D>
void CheckCase(const Case& c, double tolerance) {
  const at::ScalarType dtype = E == Element::kBFloat16 ? at::kBFloat16 : at::kHalf;
  SCOPED_TRACE(std::string(c10::toString(dtype)) + " S" + std::to_string(c.seqlen) + " D" + std::to_string(D) +
               (c.causal ? " causal" : " full") + (c.cu_seqlens.empty() ? "" : " packed"));
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  testing::Inputs x = testing::RandomInputs(c, dtype, at::kCPU, 17 + c.seqlen);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  at::Tensor out = at::full_like(x.q, nan), dq = at::full_like(x.q, nan);
  at::Tensor dk = at::full_like(x.k, nan), dv = at::full_like(x.v, nan);
  at::Tensor lse = at::full({c.batch, c.heads_q, c.seqlen}, nan, at::kFloat);
  at::Tensor delta = at::full_like(lse, nan);
  at::Tensor dq_accum = at::zeros({c.batch, c.seqlen, c.heads_q, D}, at::kFloat);

  FlashAttentionParams p;
  p.q = x.q.data_ptr();
  p.k = x.k.data_ptr();
  p.v = x.v.data_ptr();
  p.q_strides = testing::BshdStrides(x.q);
  p.k_strides = testing::BshdStrides(x.k);
  p.v_strides = testing::BshdStrides(x.v);
  p.o = out.data_ptr();
  p.o_strides = testing::BshdStrides(out);
  p.lse = lse.data_ptr<float>();
  p.dout = x.dout.data_ptr();
  p.dout_strides = testing::BshdStrides(x.dout);
  p.dq = dq.data_ptr();
  p.dk = dk.data_ptr();
  p.dv = dv.data_ptr();
  p.dq_strides = testing::BshdStrides(dq);
  p.dk_strides = testing::BshdStrides(dk);
  p.dv_strides = testing::BshdStrides(dv);
  p.delta = delta.data_ptr<float>();
  p.dq_accum = dq_accum.data_ptr<float>();
  p.batch = c.batch;
  p.heads_q = c.heads_q;
  p.heads_kv = c.heads_kv;
  p.seqlen = c.seqlen;
  p.head_dim = D;
  p.cu_seqlens = c.cu_seqlens.empty() ? nullptr : c.cu_seqlens.data();
  p.num_samples = c.cu_seqlens.empty() ? 1 : static_cast<int>(c.cu_seqlens.size()) - 1;
  p.max_seqlen = c.seqlen;
  for (size_t i = 0; i + 1 < c.cu_seqlens.size(); ++i)
    p.max_seqlen = i == 0 ? c.cu_seqlens[1] : std::max(p.max_seqlen, c.cu_seqlens[i + 1] - c.cu_seqlens[i]);
  p.scale = static_cast<float>(scale);
  p.causal = c.causal;

  RunForward<E, D>(p);
  RunBackward<E, D>(p);

  testing::Expected e = testing::MathAttention64(c, x, scale);
  EXPECT_LE(testing::RelativeError(out, e.out), tolerance) << "out";
  EXPECT_LE(testing::RelativeError(lse, e.lse), tolerance) << "lse";
  EXPECT_LE(testing::RelativeError(dq, e.dq), tolerance) << "dq";
  EXPECT_LE(testing::RelativeError(dk, e.dk), tolerance) << "dk";
  EXPECT_LE(testing::RelativeError(dv, e.dv), tolerance) << "dv";
}

// Causal forward blocks take the heaviest tiles (the sample's last) first; full attention keeps the plain order.
TEST(FlashAttentionEmulated, CausalForwardStartsWithTheLastTile) {
  EXPECT_EQ(flash::ForwardQueryTile(0, 5, /*causal=*/true), 4);
  EXPECT_EQ(flash::ForwardQueryTile(4, 5, /*causal=*/true), 0);
  EXPECT_EQ(flash::ForwardQueryTile(1, 5, /*causal=*/false), 1);
}

// Few, small shapes (the emulator is slow) that still cross every edge: a packed batch with a one-token sample,
// GQA 2:1 and 3:1, partial tiles, more than one key tile per query tile and query tile per key tile.
TEST(FlashAttentionEmulated, BFloat16HeadDim64PackedCausal) {
  CheckCase<Element::kBFloat16, 64>({1, 4, 2, 150, 64, true, {0, 1, 40, 150}}, 1e-2);
}

TEST(FlashAttentionEmulated, Float16HeadDim64FullGqa3) { CheckCase<Element::kFloat16, 64>({2, 3, 1, 77, 64, false, {}}, 3e-3); }

TEST(FlashAttentionEmulated, BFloat16HeadDim128Causal) {
  CheckCase<Element::kBFloat16, 128>({1, 2, 1, 130, 128, true, {}}, 1e-2);
}

TEST(FlashAttentionEmulated, Float16HeadDim128PackedFull) {
  CheckCase<Element::kFloat16, 128>({1, 2, 2, 100, 128, false, {0, 70, 100}}, 3e-3);
}

}  // namespace
}  // namespace agora::kernels
