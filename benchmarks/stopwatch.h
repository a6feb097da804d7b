// Wall time of a piece of work on its device, shared by the benchmarks: CUDA events on the current stream (the
// time the GPU spent, not the time the host took to queue it), or the steady clock on the CPU.
#pragma once

#include <chrono>
#include <functional>

#include <ATen/cuda/CUDAContext.h>
#include <cuda_runtime_api.h>

namespace agora::bench {

class Stopwatch {
 public:
  explicit Stopwatch(bool cuda) : cuda_(cuda) {
    if (cuda_) {
      cudaEventCreate(&start_);
      cudaEventCreate(&stop_);
    }
  }
  ~Stopwatch() {
    if (cuda_) {
      cudaEventDestroy(start_);
      cudaEventDestroy(stop_);
    }
  }
  Stopwatch(const Stopwatch&) = delete;
  Stopwatch& operator=(const Stopwatch&) = delete;

  double Milliseconds(const std::function<void()>& f) {
    if (!cuda_) {
      const auto t0 = std::chrono::steady_clock::now();
      f();
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    cudaEventRecord(start_, stream);
    f();
    cudaEventRecord(stop_, stream);
    cudaEventSynchronize(stop_);
    float ms = 0;
    cudaEventElapsedTime(&ms, start_, stop_);
    return ms;
  }

 private:
  bool cuda_;
  cudaEvent_t start_{}, stop_{};
};

}  // namespace agora::bench
