// Helpers shared by the C++ tests: fixture folders from the environment, reference tensors, error measures.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "models/safetensors.h"
#include "tests/fixture_dir.h"

namespace agora::testing {

// Every tensor of a safetensors file written by the oracle, copied out of the mapping.
inline std::map<std::string, at::Tensor> ReadTensors(const std::filesystem::path& path) {
  std::map<std::string, at::Tensor> out;
  auto file = SafetensorsFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status();
  if (!file.ok()) return out;
  for (const TensorInfo& info : (*file)->tensors()) {
    at::ScalarType dtype = info.dtype == DType::kF32    ? at::kFloat
                           : info.dtype == DType::kI64  ? at::kLong
                           : info.dtype == DType::kBF16 ? at::kBFloat16
                           : info.dtype == DType::kF16  ? at::kHalf
                                                        : at::kDouble;
    EXPECT_TRUE(info.dtype == DType::kF32 || info.dtype == DType::kI64 || info.dtype == DType::kBF16 ||
                info.dtype == DType::kF16 || info.dtype == DType::kF64)
        << path << ": " << info.name;
    auto bytes = (*file)->Data(info);
    out[info.name] = at::from_blob(const_cast<std::byte*>(bytes.data()), info.shape, dtype).clone();
  }
  return out;
}

// max |actual - expected| / max |expected|, in float64: the relative error the correctness bar bounds.
inline double RelativeError(const at::Tensor& actual, const at::Tensor& expected) {
  at::Tensor a = actual.to(at::kCPU, at::kDouble), e = expected.to(at::kCPU, at::kDouble);
  return (a - e).abs().max().item<double>() / e.abs().max().item<double>();
}

// The process's resident anonymous memory (RssAnon of /proc/self/status), in kB: what a load allocated, without the
// page cache of mapped files.
inline long RssAnonKb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("RssAnon:", 0) == 0) return std::stol(line.substr(8));
  return -1L;
}

// A GPU test on a machine without one: say so where ctest's log shows it, then skip.
#define AGORA_SKIP_WITHOUT_CUDA()                                                                  \
  do {                                                                                             \
    if (!at::hasCUDA()) {                                                                          \
      std::fprintf(stderr, "\n*** SKIPPED: %s needs a CUDA GPU and this machine has none ***\n\n", \
                   ::testing::UnitTest::GetInstance()->current_test_info()->name());               \
      GTEST_SKIP() << "no CUDA GPU on this machine";                                               \
    }                                                                                              \
  } while (0)

}  // namespace agora::testing
