// The kernel lab's warp emulator for kernels/quant: the CUDA kernels of nf4_kernels.cuh compiled as host C++ and run
// on the CPU, one std::thread per CUDA thread, with barriers standing in for __syncthreads and the warp shuffle, and
// `static` for __shared__ (blocks run one after another). The dequantisation is checked bit for bit against the ATen
// path and the GEMV against float64, so every index of the kernels (nibble order, blocks straddling rows, the
// double-quantised absmax, grid-stride steps, partial tiles, idle warps) is tested on machines without a GPU. What it
// cannot check: code generation (nvcc's own FMA contraction, vector loads), timing-dependent hazards
// (compute-sanitizer on a GPU), and speed.
#include <barrier>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "kernels/quant/nf4.h"
#include "kernels/quant/nf4_test_support.h"
#include "kernels/quant/quant_kernels.h"
#include "tests/test_util.h"

// ---- what nvcc provides and g++ does not ----------------------------------------------------------------------------

thread_local uint3 threadIdx, blockIdx;
thread_local dim3 gridDim, blockDim;

namespace agora::kernels::nf4::emulator {

constexpr int kMaxWarps = 32;
std::barrier<>* block_barrier = nullptr;
std::barrier<>* warp_barrier[kMaxWarps] = {};
float shuffle_exchange[kMaxWarps][32];

}  // namespace agora::kernels::nf4::emulator

float __shfl_xor_sync(unsigned /*mask*/, float value, int lane_mask) {
  using namespace agora::kernels::nf4::emulator;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  shuffle_exchange[warp][lane] = value;
  warp_barrier[warp]->arrive_and_wait();
  const float other = shuffle_exchange[warp][lane ^ lane_mask];
  warp_barrier[warp]->arrive_and_wait();  // nobody overwrites the exchange while others still read it
  return other;
}

void __syncthreads() { agora::kernels::nf4::emulator::block_barrier->arrive_and_wait(); }

// nvcc's correctly rounded intrinsics; `volatile` keeps g++ from fusing either with a neighbour.
float __fmul_rn(float a, float b) {
  volatile float product = a * b;
  return product;
}
float __fadd_rn(float a, float b) {
  volatile float sum = a + b;
  return sum;
}

#undef __shared__
#undef __constant__
#define __shared__ static  // one instance per kernel instantiation, shared by the running block's threads
#define __constant__
#define __launch_bounds__(...)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wattributes"  // __device__, __global__ mean nothing to g++
#include "kernels/quant/nf4_kernels.cuh"
#pragma GCC diagnostic pop

namespace agora::quant::testing {
namespace {

namespace kn = agora::kernels;
namespace emulator = agora::kernels::nf4::emulator;
using ::agora::testing::RelativeError;

// Runs `kernel` over `grid` blocks of `threads` threads, block after block.
template <typename Params>
void Run(void (*kernel)(Params), unsigned grid, int threads, const Params& params) {
  std::barrier<> block(threads);
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  for (int w = 0; w < threads / 32; ++w) {
    warps.push_back(std::make_unique<std::barrier<>>(32));
    emulator::warp_barrier[w] = warps.back().get();
  }
  emulator::block_barrier = &block;
  for (unsigned b = 0; b < grid; ++b) {
    std::vector<std::thread> running;
    for (int t = 0; t < threads; ++t) {
      running.emplace_back([&, t] {
        threadIdx = {static_cast<unsigned>(t), 0, 0};
        blockIdx = {b, 0, 0};
        gridDim = dim3(grid);
        blockDim = dim3(threads);
        kernel(params);
      });
    }
    for (std::thread& t : running) t.join();
  }
}

kn::QuantDType KernelDType(at::ScalarType dtype) {
  return dtype == at::kBFloat16 ? kn::QuantDType::kBFloat16
         : dtype == at::kHalf   ? kn::QuantDType::kFloat16
                                : kn::QuantDType::kFloat32;
}

kn::Nf4View View(const Nf4Weight& w) {
  return {w.packed.data_ptr<uint8_t>(), w.absmax_codes.data_ptr<uint8_t>(), w.absmax2.data_ptr<float>(), w.offset,
          w.numel()};
}

template <typename T>
void RunDequantize(const kn::Nf4DequantizeParams& p, unsigned grid) {
  Run(kn::nf4::Nf4DequantizeKernel<T>, grid, kn::nf4::kDequantizeThreads, p);
}

template <typename T>
void RunGemv(const kn::Nf4GemvParams& p) {
  const auto grid = static_cast<unsigned>((p.out_features + kn::nf4::kGemvWarps - 1) / kn::nf4::kGemvWarps);
  Run(kn::nf4::Nf4GemvKernel<T>, grid, kn::nf4::kGemvThreads, p);
}

// 960 chunks of 32 elements over a grid of 2 x 256 threads (the grid-stride loop's second step), the tiny model's
// down_proj (blocks straddling rows of 172; 172 absmax values, a partial 256-block), and fewer chunks than threads.
TEST(Nf4Emulated, DequantiseMatchesTheAtenPathBitForBit) {
  struct Case {
    std::vector<int64_t> shape;
    unsigned grid;
  };
  uint64_t seed = 200;
  for (const Case& c : {Case{{96, 320}, 2}, Case{{64, 172}, 1}, Case{{8, 64}, 1}}) {
    const Nf4Weight w = QuantizeNf4(RandomWeight(c.shape, at::kBFloat16, seed++)).value();
    for (at::ScalarType dtype : {at::kBFloat16, at::kHalf, at::kFloat}) {
      SCOPED_TRACE(ShapeString(c.shape) + " " + c10::toString(dtype));
      at::Tensor out = at::full(c.shape, NAN, dtype);
      const kn::Nf4DequantizeParams p{View(w), out.data_ptr(), KernelDType(dtype)};
      switch (dtype) {
        case at::kBFloat16: RunDequantize<__nv_bfloat16>(p, c.grid); break;
        case at::kHalf: RunDequantize<__half>(p, c.grid); break;
        default: RunDequantize<float>(p, c.grid); break;
      }
      EXPECT_TRUE(at::equal(out, DequantizeNf4(w, dtype).value()));
    }
  }
}

// 20 output features (the third block has four idle warps) by 2752 (tiles of 1024, 1024 and a partial 704), and a
// single short tile (64: lanes 8 to 31 idle); one, three and eight rows of x in each dtype.
TEST(Nf4Emulated, GemvMatchesFloat64) {
  uint64_t seed = 300;
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{20, 2752}, std::vector<int64_t>{9, 64}}) {
    const Nf4Weight w = QuantizeNf4(RandomWeight(shape, at::kBFloat16, seed++)).value();
    for (at::ScalarType dtype : {at::kBFloat16, at::kHalf, at::kFloat}) {
      for (int64_t rows : {1, 3, 8}) {
        SCOPED_TRACE(ShapeString(shape) + " " + c10::toString(dtype) + " rows " + std::to_string(rows));
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed++);
        const at::Tensor x = at::randn({rows, shape[1]}, gen).to(dtype);
        at::Tensor y = at::full({rows, shape[0]}, NAN, dtype);
        const kn::Nf4GemvParams p{View(w), shape[0], shape[1], x.data_ptr(), y.data_ptr(), rows, KernelDType(dtype)};
        switch (dtype) {
          case at::kBFloat16: RunGemv<__nv_bfloat16>(p); break;
          case at::kHalf: RunGemv<__half>(p); break;
          default: RunGemv<float>(p); break;
        }
        EXPECT_LE(RelativeError(y, LinearFloat64(x, w)), dtype == at::kFloat ? 1e-5 : 1e-2);
      }
    }
  }
}

}  // namespace
}  // namespace agora::quant::testing
