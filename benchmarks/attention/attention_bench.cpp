// Attention benchmark: Agora's flash kernels beside every torch SDPA backend on the machine, in one run.
//
//   build/attention_bench [--out FILE.json] [--commit SHA] [--iters N] [--max-seq S]
//
// Shapes: Llama-3-8B-like heads (32 query heads, 8 key/value heads: GQA 32/8), bf16, head dim 64 and 128,
// causal and full, seq in {512 .. 16k} with batch = 16k tokens / seq, inputs in the model's layout ([B, S, H, D]
// memory seen as [B, H, S, D]). Passes: forward, backward (from a kept graph), forward+backward. Each time is the
// median of --iters runs bracketed by CUDA events after warm-up. FLOPs: forward 4*B*Hq*D*pairs with pairs = S^2
// (full) or S(S+1)/2 (causal: only the visible pairs count, as FlashAttention reports them); backward 2.5x forward
// (five matmuls against two). Prints a table; the last line is the headline: the geometric mean over the fwd+bwd
// rows of the speed ratio agora / best torch backend (best_torch_ms / agora_ms: > 1 means Agora is faster).
// Writes JSON (GPU, date, torch version, commit, every row, headline). Needs a CUDA GPU; exits 2 without one.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/autograd.h>
#include <torch/headeronly/version.h>

#include "kernels/attention/flash_attention.h"

namespace {

constexpr int64_t kTokens = 16384, kHeadsQ = 32, kHeadsKv = 8;

struct Shape {
  int64_t seq, batch, head_dim;
  bool causal;
};

double ForwardFlops(const Shape& s) {
  const double pairs = s.causal ? s.seq * (s.seq + 1) / 2.0 : static_cast<double>(s.seq) * s.seq;
  return 4.0 * s.batch * kHeadsQ * s.head_dim * pairs;
}

// An attention implementation: out = attend(q, k, v) with q [B, Hq, S, D], k/v [B, Hkv, S, D].
struct Impl {
  std::string name;
  std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, bool, double)> attend;
  std::function<void()> select;  // sets torch's SDPA backend flags (no-op for Agora)
  bool expand_kv = false;        // the backend refused GQA: K/V repeated to Hq heads before timing
};

void OnlyBackend(bool flash, bool fa3, bool efficient, bool cudnn, bool math) {
  auto& ctx = at::globalContext();
  ctx.setSDPUseFlash(flash);
  ctx.setSDPUseFA3(fa3);
  ctx.setSDPUseMemEfficient(efficient);
  ctx.setSDPUseCuDNN(cudnn);
  ctx.setSDPUseMath(math);
}

std::vector<Impl> Implementations() {
  auto sdpa = [](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal, double scale) {
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, causal, scale, /*enable_gqa=*/q.size(1) != k.size(1));
  };
  return {
      {"agora", [](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal,
                   double scale) { return agora::kernels::FlashAttention(q, k, v, at::Tensor(), causal, scale); },
       [] {}},
      {"sdpa_flash", sdpa, [] { OnlyBackend(true, false, false, false, false); }},
      {"sdpa_flash3", sdpa, [] { OnlyBackend(true, true, false, false, false); }},
      {"sdpa_cudnn", sdpa, [] { OnlyBackend(false, false, false, true, false); }},
      {"sdpa_efficient", sdpa, [] { OnlyBackend(false, false, true, false, false); }},
      {"sdpa_math", sdpa, [] { OnlyBackend(false, false, false, false, true); }},
  };
}

// Median milliseconds of `run` over `iters` timed runs after `warmup` untimed ones.
double MedianMs(const std::function<void()>& run, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) run();
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    start.record();
    run();
    stop.record();
    stop.synchronize();
    ms.push_back(start.elapsed_time(stop));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

struct Row {
  Shape shape;
  std::string pass, impl, note;
  double ms = NAN, tflops = NAN;
};

std::string UtcNow() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path = "attention_bench.json", commit = "unknown";
  int iters = 10;
  int64_t max_seq = 16384;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--out") out_path = value;
    else if (flag == "--commit") commit = value;
    else if (flag == "--iters") iters = std::stoi(value);
    else if (flag == "--max-seq") max_seq = std::stoll(value);
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 1;
    }
  }
  if (!at::hasCUDA()) {
    std::fprintf(stderr, "attention_bench: needs a CUDA GPU and this machine has none\n");
    return 2;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  const std::string torch_version = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
                                    "." + std::to_string(TORCH_VERSION_PATCH);

  std::vector<Shape> shapes;
  for (int64_t head_dim : {64, 128})
    for (bool causal : {true, false})
      for (int64_t seq = 512; seq <= max_seq; seq *= 2) shapes.push_back({seq, std::max<int64_t>(1, kTokens / seq), head_dim, causal});

  std::vector<Row> rows;
  std::printf("%-6s %-5s %-4s %-6s %-8s %-15s %10s %9s  %s\n", "seq", "batch", "hdim", "mask", "pass", "impl", "ms",
              "TFLOP/s", "note");
  for (const Shape& s : shapes) {
    const double scale = 1.0 / std::sqrt(static_cast<double>(s.head_dim));
    auto opts = at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA);
    at::manual_seed(0);
    // The model's layout: projections give [B, S, H, D]; attention sees its [B, H, S, D] transpose.
    at::Tensor q = at::randn({s.batch, s.seq, kHeadsQ, s.head_dim}, opts).transpose(1, 2).requires_grad_();
    at::Tensor k = at::randn({s.batch, s.seq, kHeadsKv, s.head_dim}, opts).transpose(1, 2).requires_grad_();
    at::Tensor v = at::randn({s.batch, s.seq, kHeadsKv, s.head_dim}, opts).transpose(1, 2).requires_grad_();
    at::Tensor dout = at::randn({s.batch, s.seq, kHeadsQ, s.head_dim}, opts).transpose(1, 2);
    const double fwd_flops = ForwardFlops(s);
    for (Impl impl : Implementations()) {
      // The math backend materialises [B, Hq, S, S] several times over: only where that fits comfortably.
      if (impl.name == "sdpa_math" && s.batch * kHeadsQ * s.seq * s.seq > (int64_t{1} << 31)) continue;
      impl.select();
      at::Tensor k_use = k, v_use = v;
      std::string note;
      auto try_forward = [&]() -> bool {
        try {
          impl.attend(q, k_use, v_use, s.causal, scale);
          at::cuda::getCurrentCUDAStream().synchronize();
          return true;
        } catch (const c10::Error& e) {
          note = std::string(e.what_without_backtrace()).substr(0, 120);
          std::replace(note.begin(), note.end(), '\n', ' ');
          return false;
        }
      };
      bool ok = try_forward();
      if (!ok && k.size(1) != q.size(1)) {
        // Backends without GQA: what a user would do, repeat K/V heads (outside the timing).
        k_use = k.detach().repeat_interleave(kHeadsQ / kHeadsKv, 1).requires_grad_();
        v_use = v.detach().repeat_interleave(kHeadsQ / kHeadsKv, 1).requires_grad_();
        ok = try_forward();
        if (ok) note = "kv expanded (no GQA support)";
      }
      if (!ok) {
        rows.push_back({s, "fwd+bwd", impl.name, "unavailable: " + note});
        continue;
      }
      at::Tensor out;
      auto fwd = [&] { out = impl.attend(q, k_use, v_use, s.causal, scale); };
      auto bwd = [&] { torch::autograd::grad({out}, {q, k_use, v_use}, {dout}, /*retain_graph=*/true); };
      const int n = impl.name == "sdpa_math" ? std::max(3, iters / 3) : iters;
      const double fwd_ms = MedianMs(fwd, 2, n);
      fwd();
      const double bwd_ms = MedianMs(bwd, 2, n);
      const double both_ms = MedianMs([&] { fwd(); bwd(); }, 2, n);
      for (auto [pass, ms, flops] : {std::tuple{"fwd", fwd_ms, fwd_flops}, std::tuple{"bwd", bwd_ms, 2.5 * fwd_flops},
                                     std::tuple{"fwd+bwd", both_ms, 3.5 * fwd_flops}}) {
        Row r{s, pass, impl.name, note, ms, flops / (ms * 1e-3) / 1e12};
        std::printf("%-6lld %-5lld %-4lld %-6s %-8s %-15s %10.3f %9.1f  %s\n", static_cast<long long>(s.seq),
                    static_cast<long long>(s.batch), static_cast<long long>(s.head_dim), s.causal ? "causal" : "full",
                    pass, impl.name.c_str(), ms, r.tflops, note.c_str());
        rows.push_back(r);
      }
      out.reset();
    }
  }
  OnlyBackend(true, false, true, true, true);

  // Ratios per shape: best torch backend's time / Agora's, for fwd+bwd.
  double log_all = 0, log_goal = 0;
  int n_all = 0, n_goal = 0;
  nlohmann::json ratios = nlohmann::json::array();
  for (const Shape& s : shapes) {
    double agora = NAN, best = INFINITY;
    std::string best_name;
    for (const Row& r : rows) {
      if (r.pass != "fwd+bwd" || r.shape.seq != s.seq || r.shape.head_dim != s.head_dim || r.shape.causal != s.causal ||
          std::isnan(r.ms))
        continue;
      if (r.impl == "agora") agora = r.ms;
      else if (r.ms < best) best = r.ms, best_name = r.impl;
    }
    if (std::isnan(agora) || !std::isfinite(best)) continue;
    const double ratio = best / agora;
    ratios.push_back({{"seq", s.seq}, {"head_dim", s.head_dim}, {"causal", s.causal}, {"best_torch", best_name},
                      {"agora_over_best_torch", ratio}});
    std::printf("ratio seq %-6lld hdim %-4lld %-6s agora/%s = %.3f\n", static_cast<long long>(s.seq),
                static_cast<long long>(s.head_dim), s.causal ? "causal" : "full", best_name.c_str(), ratio);
    log_all += std::log(ratio), ++n_all;
    if (s.head_dim == 128 && s.seq >= 2048) log_goal += std::log(ratio), ++n_goal;
  }
  const double headline = n_all ? std::exp(log_all / n_all) : NAN;
  const double goal = n_goal ? std::exp(log_goal / n_goal) : NAN;

  nlohmann::json rows_json = nlohmann::json::array();
  for (const Row& r : rows)
    rows_json.push_back({{"seq", r.shape.seq}, {"batch", r.shape.batch}, {"head_dim", r.shape.head_dim},
                         {"causal", r.shape.causal}, {"pass", r.pass}, {"impl", r.impl},
                         {"ms", std::isnan(r.ms) ? nlohmann::json() : nlohmann::json(r.ms)},
                         {"tflops", std::isnan(r.tflops) ? nlohmann::json() : nlohmann::json(r.tflops)},
                         {"note", r.note}});
  nlohmann::json result = {
      {"benchmark", "attention"},
      {"gpu", prop.name},
      {"date", UtcNow()},
      {"torch_version", torch_version},
      {"commit", commit},
      {"dtype", "bfloat16"},
      {"heads_q", kHeadsQ},
      {"heads_kv", kHeadsKv},
      {"tokens_per_batch", kTokens},
      {"flops", "fwd 4*B*Hq*D*pairs (pairs S^2 full, S(S+1)/2 causal); bwd 2.5x fwd; fwd+bwd 3.5x fwd"},
      {"rows", rows_json},
      {"ratios_fwd_bwd", ratios},
      {"headline_definition", "geometric mean over shapes of best_torch_ms / agora_ms, fwd+bwd (> 1: Agora faster)"},
      {"headline", std::isnan(headline) ? nlohmann::json() : nlohmann::json(headline)},
      {"goal_hdim128_seq_ge_2k", std::isnan(goal) ? nlohmann::json() : nlohmann::json(goal)},
  };
  std::ofstream(out_path) << result.dump(2) << "\n";
  std::printf("goal subset (hdim 128, seq >= 2k): geomean agora/best_torch fwd+bwd speed = %.3f\n", goal);
  std::printf("headline: geomean agora/best_torch fwd+bwd speed = %.3f (%s, %s)\n", headline, prop.name,
              out_path.c_str());
  return 0;
}
