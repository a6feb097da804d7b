// The lm_head projection + cross-entropy, Agora's fused LinearCrossEntropy (kernels/loss) beside what a user
// would otherwise run: torch's linear, the fp32 upcast of the logits (as transformers' causal-LM loss does) and
// cross_entropy with mean reduction. bf16 inputs, 25 % of the targets ignored, forward + backward into both
// hidden and weight. Per shape: median forward and backward times over CUDA events (after warm-up), and the
// peak memory the step allocates above its inputs (the CUDA caching allocator's peak statistic).
//
// Usage: linear_cross_entropy_bench [--json PATH] [--commit SHA] [--repeats R] [--quick]
// The full grid (N in 4k/16k/32k, D in 2048/4096, V in 32000/128256) needs a CUDA GPU; --quick runs three tiny
// shapes on whatever device there is (a smoke test of this program; CPU times say nothing). The table's last
// line is the headline ratios at N=16k, D=4096, V=128256; --json writes every row and the headline.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/autograd.h>
#include <torch/headeronly/version.h>

#include "benchmarks/stopwatch.h"
#include "kernels/loss/cross_entropy.h"

namespace {

struct Shape {
  int64_t n, d, v;
};

struct Measurement {
  double forward_ms = 0, backward_ms = 0, peak_mib = 0;
  double total_ms() const { return forward_ms + backward_ms; }
};

using agora::bench::Stopwatch;

using LossFn = std::function<at::Tensor(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets)>;

at::Tensor AgoraLoss(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets) {
  return agora::loss::MeanOverTargets(agora::loss::LinearCrossEntropy(hidden, weight, targets).loss, targets);
}

at::Tensor TorchLoss(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets) {
  return at::cross_entropy_loss(at::linear(hidden, weight).to(at::kFloat), targets, {}, at::Reduction::Mean,
                                agora::kIgnoreLabel);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median forward and backward times over `repeats` runs after two warm-ups; the peak allocated bytes above the
// inputs over one run. std::nullopt when the device runs out of memory.
std::optional<Measurement> Measure(const LossFn& loss_fn, const Shape& s, const at::Device& device, int repeats) {
  const bool cuda = device.is_cuda();
  try {
    at::manual_seed(0);
    const at::TensorOptions bf16 = at::TensorOptions().device(device).dtype(at::kBFloat16);
    const at::Tensor hidden = at::randn({s.n, s.d}, bf16).requires_grad_();
    const at::Tensor weight = (at::randn({s.v, s.d}, bf16) * (1.0 / std::sqrt(static_cast<double>(s.d)))).requires_grad_();
    at::Tensor targets = at::randint(0, s.v, {s.n}, at::TensorOptions().device(device).dtype(at::kLong));
    targets.masked_fill_(at::rand({s.n}, at::TensorOptions().device(device)) < 0.25, agora::kIgnoreLabel);
    Stopwatch watch(cuda);
    std::vector<double> forward, backward;
    Measurement m;
    for (int i = 0; i < repeats + 2; ++i) {
      hidden.mutable_grad().reset();
      weight.mutable_grad().reset();
      if (cuda) {
        at::cuda::device_synchronize();
        c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
      }
      const int64_t before =
          cuda ? c10::cuda::CUDACachingAllocator::getDeviceStats(device.index()).allocated_bytes[0].current : 0;
      at::Tensor loss;
      const double f = watch.Milliseconds([&] { loss = loss_fn(hidden, weight, targets); });
      const double b = watch.Milliseconds([&] { torch::autograd::backward({loss}); });
      if (i < 2) continue;  // warm-up: cuBLAS heuristics, the caching allocator's pools
      forward.push_back(f);
      backward.push_back(b);
      if (cuda) {
        const int64_t peak = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index()).allocated_bytes[0].peak;
        m.peak_mib = std::max(m.peak_mib, (peak - before) / double(1 << 20));
      }
    }
    m.forward_ms = Median(forward);
    m.backward_ms = Median(backward);
    return m;
  } catch (const c10::OutOfMemoryError&) {
    if (cuda) c10::cuda::CUDACachingAllocator::emptyCache();
    return std::nullopt;
  }
}

nlohmann::json ToJson(const std::optional<Measurement>& m) {
  if (!m) return "out of memory";
  return {{"forward_ms", m->forward_ms}, {"backward_ms", m->backward_ms}, {"total_ms", m->total_ms()},
          {"peak_mib", m->peak_mib}};
}

std::string Cell(const std::optional<Measurement>& m) {
  char buf[96];
  if (!m) return "            out of memory             ";
  std::snprintf(buf, sizeof buf, "%8.2f %8.2f %8.2f %9.0f", m->forward_ms, m->backward_ms, m->total_ms(), m->peak_mib);
  return buf;
}

std::string UtcDate() {
  const std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path, commit = "unknown";
  int repeats = 10;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (arg == "--commit" && i + 1 < argc) commit = argv[++i];
    else if (arg == "--repeats" && i + 1 < argc) repeats = std::max(1, std::atoi(argv[++i]));
    else if (arg == "--quick") quick = true;
    else {
      std::fprintf(stderr, "usage: %s [--json PATH] [--commit SHA] [--repeats R] [--quick]\n", argv[0]);
      return 2;
    }
  }
  const bool cuda = at::hasCUDA();
  if (!cuda && !quick) {
    std::fprintf(stderr, "linear_cross_entropy_bench: no CUDA GPU here; the full grid needs one (--quick runs a "
                         "smoke test on the CPU)\n");
    return 1;
  }
  const at::Device device = cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  std::vector<Shape> shapes;
  if (quick) {
    shapes = {{256, 64, 1000}, {1000, 128, 3000}, {513, 96, 2049}};
  } else {
    for (int64_t n : {4096, 16384, 32768})
      for (int64_t d : {2048, 4096})
        for (int64_t v : {32000, 128256}) shapes.push_back({n, d, v});
  }
  const Shape headline = quick ? shapes[1] : Shape{16384, 4096, 128256};
  const std::string gpu = cuda ? at::cuda::getCurrentDeviceProperties()->name : "cpu";

  std::printf("%s, torch %s, bf16, 25%% targets ignored, median of %d after 2 warm-ups; peak = MiB allocated "
              "above the inputs\n", gpu.c_str(), TORCH_VERSION, repeats);
  std::printf("%6s %5s %7s | %-37s | %-37s | %6s %6s\n", "N", "D", "V", "agora fwd ms, bwd ms, total ms, peak",
              "torch fwd ms, bwd ms, total ms, peak", "time", "memory");
  nlohmann::json rows = nlohmann::json::array();
  std::optional<double> headline_time, headline_memory;
  for (const Shape& s : shapes) {
    const std::optional<Measurement> agora = Measure(AgoraLoss, s, device, repeats);
    const std::optional<Measurement> torch = Measure(TorchLoss, s, device, repeats);
    nlohmann::json row = {{"N", s.n}, {"D", s.d}, {"V", s.v}, {"agora", ToJson(agora)}, {"torch", ToJson(torch)}};
    std::string ratios = "     -      -";
    if (agora && torch) {
      const double time_ratio = agora->total_ms() / torch->total_ms();
      const double memory_ratio = cuda ? agora->peak_mib / torch->peak_mib : 0.0;
      row["time_ratio"] = time_ratio;
      if (cuda) row["memory_ratio"] = memory_ratio;
      // Useful work: the three GEMMs of forward + backward (6 N D V); Agora does a fourth (the recompute).
      row["agora_useful_tflops"] = 6.0 * s.n * s.d * s.v / (agora->total_ms() * 1e9);
      row["torch_useful_tflops"] = 6.0 * s.n * s.d * s.v / (torch->total_ms() * 1e9);
      char buf[32];
      std::snprintf(buf, sizeof buf, "%6.3f %6.3f", time_ratio, memory_ratio);
      ratios = buf;
      if (s.n == headline.n && s.d == headline.d && s.v == headline.v) {
        headline_time = time_ratio;
        headline_memory = memory_ratio;
      }
    }
    rows.push_back(row);
    std::printf("%6lld %5lld %7lld | %s | %s | %s\n", static_cast<long long>(s.n), static_cast<long long>(s.d),
                static_cast<long long>(s.v), Cell(agora).c_str(), Cell(torch).c_str(), ratios.c_str());
    std::fflush(stdout);
  }
  char last[200];
  if (headline_time) {
    std::snprintf(last, sizeof last, "headline N=%lld D=%lld V=%lld: memory agora/torch %.3f, time agora/torch %.3f",
                  static_cast<long long>(headline.n), static_cast<long long>(headline.d),
                  static_cast<long long>(headline.v), *headline_memory, *headline_time);
  } else {
    std::snprintf(last, sizeof last, "headline: not measured (a side ran out of memory)");
  }
  std::printf("%s\n", last);

  if (!json_path.empty()) {
    nlohmann::json out = {
        {"benchmark", "linear_cross_entropy"},
        {"gpu", gpu},
        {"date", UtcDate()},
        {"torch_version", TORCH_VERSION},
        {"commit", commit},
        {"dtype", "bfloat16"},
        {"ignored_fraction", 0.25},
        {"repeats", repeats},
        {"torch_baseline", "at::linear, .to(float32), at::cross_entropy_loss(mean, ignore_index=-100)"},
        {"others", "Liger-Kernel and Cut Cross-Entropy not run: their wheels are not on the GPU machine"},
        {"rows", rows},
        {"headline_shape", {{"N", headline.n}, {"D", headline.d}, {"V", headline.v}}},
        {"headline_memory_ratio", headline_memory ? nlohmann::json(*headline_memory) : nlohmann::json(nullptr)},
        {"headline_time_ratio", headline_time ? nlohmann::json(*headline_time) : nlohmann::json(nullptr)},
    };
    std::ofstream(json_path) << out.dump(2) << "\n";
  }
  return 0;
}
