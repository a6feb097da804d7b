// kernels/quant's two CUDA kernels at Llama-2-7B's projection shapes, beside what they replace:
//   dequantise: Nf4Dequantize (NF4 -> bf16 scratch) against a bf16 device-to-device copy of the same output size
//               (the bandwidth a memory-bound kernel can reach) and the HBM figure; GB/s = bytes read + written / time;
//   GEMV:       Nf4Gemv (the fused dequantise + GEMV) for 1, 2, 4 and 8 rows of bf16 x against torch's bf16 matmul
//               on the unquantised weight (cuBLAS) and against dequantise + that matmul (Nf4Gemv's fallback).
// Per row: the median of R runs over CUDA events after 3 warm-ups.
//
// Usage: nf4_bench [--json PATH] [--commit SHA] [--repeats R] [--hbm-gbps G] [--quick]
// Needs a CUDA GPU; --quick runs a small shape on whatever device there is (a smoke test of this program: on the CPU
// both sides are ATen ops and the times say nothing). --hbm-gbps defaults to 3350 on an H100 and 4800 on an H200
// (their data sheets), else 0 (not reported). The table's last line is the headline at 4096 x 4096.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <nlohmann/json.hpp>
#include <torch/headeronly/version.h>

#include "benchmarks/stopwatch.h"
#include "kernels/quant/nf4.h"
#include "kernels/quant/nf4_binding.h"

namespace {

using agora::bench::Stopwatch;
using agora::quant::Nf4Weight;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median milliseconds of `f` over `repeats` runs after three warm-ups.
double MedianMs(Stopwatch& watch, int repeats, const std::function<void()>& f) {
  std::vector<double> times;
  for (int i = 0; i < repeats + 3; ++i) {
    const double ms = watch.Milliseconds(f);
    if (i >= 3) times.push_back(ms);
  }
  return Median(times);
}

std::string UtcDate() {
  const std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return buf;
}

double DefaultHbmGbps(const std::string& gpu) {
  if (gpu.find("H200") != std::string::npos) return 4800;
  if (gpu.find("H100") != std::string::npos) return 3350;
  return 0;
}

// bytes / ms in GB/s.
double Gbps(double bytes, double ms) { return bytes / (ms * 1e6); }

}  // namespace

int main(int argc, char** argv) {
  std::string json_path, commit = "unknown";
  int repeats = 50;
  double hbm_gbps = -1;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (arg == "--commit" && i + 1 < argc) commit = argv[++i];
    else if (arg == "--repeats" && i + 1 < argc) repeats = std::max(1, std::atoi(argv[++i]));
    else if (arg == "--hbm-gbps" && i + 1 < argc) hbm_gbps = std::atof(argv[++i]);
    else if (arg == "--quick") quick = true;
    else {
      std::fprintf(stderr, "usage: %s [--json PATH] [--commit SHA] [--repeats R] [--hbm-gbps G] [--quick]\n", argv[0]);
      return 2;
    }
  }
  const bool cuda = at::hasCUDA();
  if (!cuda && !quick) {
    std::fprintf(stderr, "nf4_bench: no CUDA GPU here; the kernels need one (--quick runs a smoke test on the CPU)\n");
    return 1;
  }
  const at::Device device = cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  const std::string gpu = cuda ? at::cuda::getCurrentDeviceProperties()->name : "cpu";
  if (hbm_gbps < 0) hbm_gbps = DefaultHbmGbps(gpu);
  if (quick) repeats = std::min(repeats, 3);
  const std::vector<std::pair<int64_t, int64_t>> shapes =
      quick ? std::vector<std::pair<int64_t, int64_t>>{{256, 512}}
            : std::vector<std::pair<int64_t, int64_t>>{{4096, 4096}, {11008, 4096}, {4096, 11008}};
  const std::vector<int64_t> row_counts = {1, 2, 4, 8};
  Stopwatch watch(cuda);

  std::printf("%s, torch %s, HBM %.0f GB/s, median of %d after 3 warm-ups; bf16 output and x\n", gpu.c_str(),
              TORCH_VERSION, hbm_gbps, repeats);
  nlohmann::json rows = nlohmann::json::array();
  double headline_gemv_ratio = 0, headline_dequant_fraction = 0, headline_copy_fraction = 0;
  for (const auto& [out_features, in_features] : shapes) {
    at::manual_seed(0);
    const at::Tensor weight = at::randn({out_features, in_features}, at::TensorOptions().dtype(at::kBFloat16)) * 0.02;
    const absl::StatusOr<Nf4Weight> quantised = agora::quant::QuantizeNf4(weight.to(device), "weight");
    if (!quantised.ok()) {
      std::fprintf(stderr, "nf4_bench: %s\n", std::string(quantised.status().message()).c_str());
      return 1;
    }
    const Nf4Weight& w = *quantised;
    const at::Tensor w_bf16 = weight.to(device);
    const double n = static_cast<double>(out_features * in_features);

    // Dequantise, and a bf16 copy of the same output size.
    at::Tensor scratch;
    const double dequant_ms = MedianMs(watch, repeats, [&] { scratch = agora::quant::Nf4Dequantize(w, at::kBFloat16).value(); });
    at::Tensor copy_out = at::empty_like(w_bf16);
    const double copy_ms = MedianMs(watch, repeats, [&] { copy_out.copy_(w_bf16); });
    const double dequant_bytes = static_cast<double>(w.bytes()) + 2 * n;
    const double dequant_gbps = Gbps(dequant_bytes, dequant_ms), copy_gbps = Gbps(4 * n, copy_ms);
    std::printf("\n%lld x %lld: NF4 %.2f MB (%.4f B/param), bf16 %.2f MB\n", static_cast<long long>(out_features),
                static_cast<long long>(in_features), w.bytes() / 1e6, w.bytes() / n, 2 * n / 1e6);
    std::printf("  dequantise -> bf16 %8.2f us %7.0f GB/s%s | bf16 copy %8.2f us %7.0f GB/s | dequant/copy GB/s %.3f\n",
                dequant_ms * 1e3, dequant_gbps,
                hbm_gbps > 0 ? (" (" + std::to_string(static_cast<int>(100 * dequant_gbps / hbm_gbps)) + " % of HBM)").c_str() : "",
                copy_ms * 1e3, copy_gbps, dequant_gbps / copy_gbps);
    nlohmann::json row = {{"out_features", out_features}, {"in_features", in_features}, {"nf4_bytes", w.bytes()},
                          {"dequantize_us", dequant_ms * 1e3}, {"dequantize_gbps", dequant_gbps},
                          {"bf16_copy_us", copy_ms * 1e3}, {"bf16_copy_gbps", copy_gbps}};
    if (hbm_gbps > 0) row["dequantize_hbm_fraction"] = dequant_gbps / hbm_gbps;

    // GEMV: fused, torch's bf16 matmul on the unquantised weight, dequantise + that matmul.
    std::printf("  %4s | %-22s | %-22s | %-16s | %s\n", "rows", "fused NF4 GEMV us GB/s", "bf16 matmul us GB/s",
                "dequant+matmul us", "fused/bf16 time");
    nlohmann::json gemv = nlohmann::json::array();
    for (int64_t r : row_counts) {
      const at::Tensor x = at::randn({r, in_features}, at::TensorOptions().dtype(at::kBFloat16).device(device));
      at::Tensor y;
      const double fused_ms = MedianMs(watch, repeats, [&] { y = agora::quant::Nf4Gemv(x, w).value(); });
      const double matmul_ms = MedianMs(watch, repeats, [&] { y = at::matmul(x, w_bf16.t()); });
      const double both_ms = MedianMs(watch, repeats, [&] {
        y = at::matmul(x, agora::quant::Nf4Dequantize(w, at::kBFloat16).value().t());
      });
      const double fused_gbps = Gbps(static_cast<double>(w.bytes()), fused_ms), matmul_gbps = Gbps(2 * n, matmul_ms);
      std::printf("  %4lld | %9.2f %9.0f    | %9.2f %9.0f    | %13.2f    | %.3f\n", static_cast<long long>(r),
                  fused_ms * 1e3, fused_gbps, matmul_ms * 1e3, matmul_gbps, both_ms * 1e3, fused_ms / matmul_ms);
      nlohmann::json g = {{"rows", r}, {"fused_us", fused_ms * 1e3}, {"fused_weight_gbps", fused_gbps},
                          {"bf16_matmul_us", matmul_ms * 1e3}, {"bf16_matmul_weight_gbps", matmul_gbps},
                          {"dequantize_matmul_us", both_ms * 1e3}, {"fused_over_bf16_time", fused_ms / matmul_ms}};
      if (hbm_gbps > 0) g["fused_hbm_fraction"] = fused_gbps / hbm_gbps;
      gemv.push_back(g);
      if (out_features == shapes[0].first && in_features == shapes[0].second && r == 1) {
        headline_gemv_ratio = fused_ms / matmul_ms;
        headline_dequant_fraction = hbm_gbps > 0 ? dequant_gbps / hbm_gbps : 0;
        headline_copy_fraction = dequant_gbps / copy_gbps;
      }
    }
    row["gemv"] = gemv;
    rows.push_back(row);
    std::fflush(stdout);
  }
  std::printf("\nheadline %lld x %lld: fused NF4 GEMV (1 row) / bf16 matmul time %.3f; dequantise at %.2f of HBM, "
              "%.2f of a bf16 copy's GB/s\n",
              static_cast<long long>(shapes[0].first), static_cast<long long>(shapes[0].second), headline_gemv_ratio,
              headline_dequant_fraction, headline_copy_fraction);

  if (!json_path.empty()) {
    nlohmann::json out = {
        {"benchmark", "nf4"},
        {"gpu", gpu},
        {"date", UtcDate()},
        {"torch_version", TORCH_VERSION},
        {"commit", commit},
        {"repeats", repeats},
        {"hbm_gbps", hbm_gbps},
        {"baselines", "bf16 copy: at::Tensor::copy_ (device to device); bf16 matmul: at::matmul(x, W.t()) on the "
                      "unquantised bf16 weight (cuBLAS)"},
        {"rows", rows},
        {"headline_gemv_over_bf16_time", headline_gemv_ratio},
        {"headline_dequantize_hbm_fraction", headline_dequant_fraction},
        {"headline_dequantize_over_copy_gbps", headline_copy_fraction},
    };
    std::ofstream(json_path) << out.dump(2) << "\n";
  }
  return 0;
}
