// Data-parallel parts below the trainer: launcher environments, and the bucketed gradient reduction over real
// Gloo process groups (one thread per rank, talking through TCP on loopback) checked against float64 autograd.
// The whole-trainer checks with real processes are in check_distributed.py.
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <torch/csrc/autograd/autograd.h>
#include <unistd.h>

#include "trainer/distributed/communicator.h"
#include "trainer/distributed/gradient_reducer.h"
#include "trainer/distributed/launch_environment.h"

namespace agora {
namespace {

absl::StatusOr<std::optional<LaunchEnvironment>> Read(const std::map<std::string, std::string>& vars) {
  return ReadLaunchEnvironment([&](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  });
}

TEST(LaunchEnvironment, NoneWithoutLauncherVariables) {
  auto env = Read({{"HOME", "/root"}, {"MASTER_PORT", "1234"}});
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_FALSE(env->has_value());
}

TEST(LaunchEnvironment, Torchrun) {
  auto env = Read({{"RANK", "5"}, {"WORLD_SIZE", "16"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "4"},
                   {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29400"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                   {"TORCHELASTIC_RESTART_COUNT", "2"}});
  ASSERT_TRUE(env.ok()) << env.status();
  ASSERT_TRUE(env->has_value());
  const LaunchEnvironment& e = **env;
  EXPECT_EQ(e.launcher, "torchrun");
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 16);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 4);
  EXPECT_EQ(e.master_addr, "node7");
  EXPECT_EQ(e.master_port, 29400);
  EXPECT_TRUE(e.agent_store);
  EXPECT_EQ(e.restart_count, 2);
}

TEST(LaunchEnvironment, OpenMpiWinsOverTheSlurmAllocationAroundIt) {
  auto env = Read({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "8"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "3"},
                   {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}, {"MASTER_ADDR", "10.0.0.1"}, {"SLURM_PROCID", "0"},
                   {"SLURM_NTASKS", "1"}});
  ASSERT_TRUE(env.ok()) << env.status();
  const LaunchEnvironment& e = **env;
  EXPECT_EQ(e.launcher, "Open MPI");
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 3);
  EXPECT_EQ(e.local_world_size, 4);
  EXPECT_EQ(e.master_addr, "10.0.0.1");
  EXPECT_EQ(e.master_port, 29500);
  EXPECT_FALSE(e.agent_store);
}

TEST(LaunchEnvironment, OpenMpiAcrossNodesNeedsMasterAddr) {
  auto env = Read({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "8"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                   {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}});
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.status().message().find("MASTER_ADDR"), std::string::npos) << env.status();
  auto one_node = Read({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"},
                        {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}});
  ASSERT_TRUE(one_node.ok()) << one_node.status();
  EXPECT_EQ((*one_node)->master_addr, "127.0.0.1");
}

TEST(LaunchEnvironment, SlurmMasterIsTheFirstHostOfTheStep) {
  auto env = Read({{"SLURM_PROCID", "9"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "1"},
                   {"SLURM_TASKS_PER_NODE", "8(x2)"}, {"SLURM_STEP_NODELIST", "gpu-a[017-018,020]"},
                   {"SLURM_JOB_NODELIST", "other[1-9]"}, {"MASTER_PORT", "12345"}});
  ASSERT_TRUE(env.ok()) << env.status();
  const LaunchEnvironment& e = **env;
  EXPECT_EQ(e.launcher, "SLURM");
  EXPECT_EQ(e.rank, 9);
  EXPECT_EQ(e.world_size, 16);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 8);
  EXPECT_EQ(e.master_addr, "gpu-a017");
  EXPECT_EQ(e.master_port, 12345);
  // MASTER_ADDR, when the job script sets it, wins over the node list.
  auto set = Read({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_NTASKS_PER_NODE", "2"},
                   {"SLURM_JOB_NODELIST", "n[1-2]"}, {"MASTER_ADDR", "head"}});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ((*set)->master_addr, "head");
  EXPECT_EQ((*set)->local_world_size, 2);
}

TEST(LaunchEnvironment, SlurmHostLists) {
  const std::pair<std::string, std::string> cases[] = {
      {"node1", "node1"},           {"a,b", "a"},
      {"gpu[003-005,9],cpu1", "gpu003"}, {"x[7]", "x7"},
      {"rack[2-3]-n[1-4]", "rack2-n1"}, {"c,d[01-02]", "c"}};
  for (const auto& [list, first] : cases) {
    absl::StatusOr<std::string> host = FirstSlurmHost(list);
    ASSERT_TRUE(host.ok()) << list << ": " << host.status();
    EXPECT_EQ(*host, first) << list;
  }
  EXPECT_FALSE(FirstSlurmHost("").ok());
  EXPECT_FALSE(FirstSlurmHost("n[").ok());
  EXPECT_FALSE(FirstSlurmHost("]n").ok());
  absl::StatusOr<int64_t> tasks = FirstSlurmTaskCount("4(x2),3");
  ASSERT_TRUE(tasks.ok());
  EXPECT_EQ(*tasks, 4);
  EXPECT_FALSE(FirstSlurmTaskCount("(x2)").ok());
}

TEST(LaunchEnvironment, ErrorsNameTheVariable) {
  auto outside = Read({{"RANK", "4"}, {"WORLD_SIZE", "4"}, {"MASTER_ADDR", "h"}});
  ASSERT_FALSE(outside.ok());
  EXPECT_NE(outside.status().message().find("rank 4 is outside a world of 4"), std::string::npos)
      << outside.status();
  auto bad = Read({{"RANK", "0"}, {"WORLD_SIZE", "two"}, {"MASTER_ADDR", "h"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("WORLD_SIZE='two'"), std::string::npos) << bad.status();
  auto no_addr = Read({{"RANK", "0"}, {"WORLD_SIZE", "2"}});
  ASSERT_FALSE(no_addr.ok());
  EXPECT_NE(no_addr.status().message().find("MASTER_ADDR"), std::string::npos) << no_addr.status();
  auto port = Read({{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}});
  ASSERT_FALSE(port.ok());
  EXPECT_NE(port.status().message().find("MASTER_PORT"), std::string::npos) << port.status();
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

LaunchEnvironment Local(int64_t rank, int64_t world, int port) {
  LaunchEnvironment e;
  e.launcher = "test";
  e.rank = rank;
  e.world_size = world;
  e.local_rank = rank;
  e.local_world_size = world;
  e.master_addr = "127.0.0.1";
  e.master_port = port;
  return e;
}

// The model of one rank: three used parameters (one bf16, whose optimizer keeps an fp32 sum) and one the loss
// never reaches. Its loss on micro-batch (rank, m): sum(tanh(x @ w1) * w2) + sum(w3 * c), with c small integers
// so that the bf16 gradient of w3 is exact.
struct Inputs {
  at::Tensor x, c;
};
Inputs Draw(int64_t rank, int64_t micro) {
  at::Generator gen = at::detail::createCPUGenerator(1000 + 10 * rank + micro);
  return {at::randn({6, 5}, gen, at::kDouble), at::randint(-4, 5, {4, 3}, gen, at::kDouble)};
}
at::Tensor Loss(const at::Tensor& w1, const at::Tensor& w2, const at::Tensor& w3, const Inputs& in) {
  return (at::tanh(at::matmul(in.x.to(w1.scalar_type()), w1)) * w2).sum() + (w3 * in.c.to(w3.scalar_type())).sum();
}

TEST(GradientReducer, SumsTheStepsGradientsOverGlooRanksInBuckets) {
  constexpr int64_t kWorld = 3, kMicro = 2;
  at::Generator gen = at::detail::createCPUGenerator(7);
  const at::Tensor w1_0 = at::randn({5, 7}, gen, at::kDouble), w2_0 = at::randn({7}, gen, at::kDouble),
                   w3_0 = at::randn({4, 3}, gen, at::kDouble);
  // Reference: float64 autograd over every rank's and micro-batch's loss.
  at::Tensor r1 = w1_0.clone().requires_grad_(true), r2 = w2_0.clone().requires_grad_(true),
             r3 = w3_0.clone().requires_grad_(true);
  for (int64_t r = 0; r < kWorld; ++r)
    for (int64_t m = 0; m < kMicro; ++m) Loss(r1, r2, r3, Draw(r, m)).backward();

  const int port = FreePort();
  std::vector<std::string> failures(kWorld);
  std::vector<at::Tensor> g1(kWorld), g2(kWorld), g3(kWorld), g4(kWorld);
  std::vector<int64_t> buckets(kWorld), started_in_backward(kWorld);
  std::vector<std::thread> threads;
  for (int64_t rank = 0; rank < kWorld; ++rank) {
    threads.emplace_back([&, rank] {
      auto comm = Communicator::Connect(Local(rank, kWorld, port), CommBackend::kGloo, std::chrono::seconds(30));
      if (!comm.ok()) {
        failures[rank] = std::string(comm.status().message());
        return;
      }
      at::Tensor w1 = w1_0.to(at::kFloat).requires_grad_(true), w2 = w2_0.to(at::kFloat).requires_grad_(true),
                 w3 = w3_0.to(at::kBFloat16).requires_grad_(true), unused = at::ones({2}).requires_grad_(true);
      at::Tensor w3_sum = at::zeros({4, 3});  // the optimizer's fp32 sum for the bf16 parameter
      // 48 bytes per bucket: w1 (35 floats) and w2 (7) cannot share one, so there are several.
      GradientReducer reducer(**comm, {{w1, {}}, {w2, {}}, {w3, w3_sum}, {unused, {}}}, 48);
      buckets[rank] = reducer.bucket_count();
      for (int64_t m = 0; m < kMicro; ++m) {
        const bool last = m + 1 == kMicro;
        reducer.Arm(last);
        Loss(w1, w2, w3, Draw(rank, m)).backward();
        if (last) started_in_backward[rank] = reducer.buckets_started();
        absl::Status finished = reducer.Finish();
        if (!finished.ok()) failures[rank] = std::string(finished.message());
        if (!last) {  // what AdamW::AccumulateGradients does for a bf16 parameter
          w3_sum.add_(w3.grad().to(at::kFloat));
          w3.mutable_grad().reset();
        }
      }
      g1[rank] = w1.grad().clone();
      g2[rank] = w2.grad().clone();
      g3[rank] = w3_sum.clone();
      EXPECT_FALSE(w3.grad().defined()) << "the bf16 parameter's sum lives in the fp32 accumulator";
      g4[rank] = unused.grad().defined() ? unused.grad().clone() : at::Tensor();
    });
  }
  for (std::thread& t : threads) t.join();
  for (int64_t rank = 0; rank < kWorld; ++rank) {
    ASSERT_EQ(failures[rank], "") << "rank " << rank;
    EXPECT_EQ(buckets[rank], 4) << "w1, w2, w3 and the unused parameter each in a bucket of their own";
    // Buckets start in index order and the unused parameter's (the first: reverse registration order) never
    // fills, so nothing may start before Finish() here.
    EXPECT_EQ(started_in_backward[rank], 0);
    auto rel = [](const at::Tensor& a, const at::Tensor& b) {
      return (a.to(at::kDouble) - b).abs().max().item<double>() / b.abs().max().item<double>();
    };
    EXPECT_LE(rel(g1[rank], r1.grad()), 1e-5) << "rank " << rank;
    EXPECT_LE(rel(g2[rank], r2.grad()), 1e-5) << "rank " << rank;
    EXPECT_LE(rel(g3[rank], r3.grad()), 1e-6) << "rank " << rank << ": exact integers";
    ASSERT_TRUE(g4[rank].defined());
    EXPECT_EQ(g4[rank].abs().max().item<double>(), 0.0) << "no rank reached it: zeros";
    // Every rank holds the same sums, bit for bit.
    EXPECT_TRUE(at::equal(g1[rank], g1[0]));
    EXPECT_TRUE(at::equal(g3[rank], g3[0]));
  }
}

TEST(GradientReducer, BucketsStartDuringTheBackward) {
  // Parameters registered in forward order; the backward produces the last one's gradient first, so with one
  // bucket per parameter every bucket but the first-registered one's starts from a hook.
  const int port = FreePort();
  std::vector<int64_t> started(2, -1);
  std::vector<std::thread> threads;
  for (int64_t rank = 0; rank < 2; ++rank) {
    threads.emplace_back([&, rank] {
      auto comm = Communicator::Connect(Local(rank, 2, port), CommBackend::kGloo, std::chrono::seconds(30));
      ASSERT_TRUE(comm.ok()) << comm.status();
      std::vector<at::Tensor> layers;
      for (int i = 0; i < 4; ++i) layers.push_back(at::full({8, 8}, 0.1 * (i + 1)).requires_grad_(true));
      std::vector<ReducedParameter> params;
      for (const at::Tensor& w : layers) params.push_back({w, {}});
      GradientReducer reducer(**comm, params, 8 * 8 * 4);
      reducer.Arm(true);
      at::Tensor h = at::full({2, 8}, static_cast<double>(rank + 1));
      for (const at::Tensor& w : layers) h = at::tanh(at::matmul(h, w));
      h.sum().backward();
      started[rank] = reducer.buckets_started();
      ASSERT_TRUE(reducer.Finish().ok());
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(started[0], 4);
  EXPECT_EQ(started[1], 4);
}

TEST(Communicator, SumsOverNcclWithWorldSizeOne) {
  if (!at::hasCUDA())
    GTEST_SKIP() << "SKIPPED: no CUDA GPU on this machine; the NCCL backend (world size 1) is tested on a GPU";
  auto comm = Communicator::Connect(Local(0, 1, FreePort()), CommBackend::kNccl, std::chrono::seconds(60));
  ASSERT_TRUE(comm.ok()) << comm.status();
  at::Tensor w = at::full({1000}, 0.5, at::TensorOptions().device(at::kCUDA)).requires_grad_(true);
  GradientReducer reducer(**comm, {{w, {}}}, 1 << 20);
  reducer.Arm(true);
  (w * w).sum().backward();
  ASSERT_TRUE(reducer.Finish().ok());
  EXPECT_EQ(w.grad().cpu().sub(1.0).abs().max().item<double>(), 0.0);
}

}  // namespace
}  // namespace agora
