#include "trainer/distributed/launch_environment.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace agora {
namespace {

class Reader {
 public:
  Reader(const EnvLookup& env, std::string launcher) : env_(env), launcher_(std::move(launcher)) {}

  absl::StatusOr<int64_t> Int(const std::string& name, int64_t min) const {
    std::optional<std::string> text = env_(name);
    if (!text) return absl::InvalidArgumentError(absl::StrCat(launcher_, " environment: ", name, " is not set"));
    int64_t value = 0;
    if (!absl::SimpleAtoi(*text, &value) || value < min)
      return absl::InvalidArgumentError(absl::StrCat(launcher_, " environment: ", name, "='", *text,
                                                     "' is not an integer >= ", min));
    return value;
  }
  absl::StatusOr<int64_t> IntOr(const std::string& name, int64_t min, int64_t fallback) const {
    if (!env_(name)) return fallback;
    return Int(name, min);
  }

 private:
  const EnvLookup& env_;
  std::string launcher_;
};

absl::Status Check(const LaunchEnvironment& e) {
  if (e.rank >= e.world_size)
    return absl::InvalidArgumentError(absl::StrCat(e.launcher, " environment: rank ", e.rank,
                                                   " is outside a world of ", e.world_size, " ranks"));
  if (e.local_rank >= e.local_world_size || e.local_world_size > e.world_size)
    return absl::InvalidArgumentError(absl::StrCat(e.launcher, " environment: local rank ", e.local_rank,
                                                   " of ", e.local_world_size, " per node does not fit a world of ",
                                                   e.world_size));
  if (e.master_port < 1 || e.master_port > 65535)
    return absl::InvalidArgumentError(absl::StrCat(e.launcher, " environment: MASTER_PORT=", e.master_port,
                                                   " is not a TCP port"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> FirstSlurmHost(const std::string& node_list) {
  // Grammar: entry[,entry...], an entry being text with bracketed range lists ("n[01-04,7]-ib[0-1]"). The first
  // host is the first entry with each bracket replaced by the first number in it, zero padding kept.
  std::string host;
  for (size_t i = 0; i < node_list.size() && node_list[i] != ',';) {
    if (node_list[i] == ']') break;
    if (node_list[i] != '[') {
      host += node_list[i++];
      continue;
    }
    const size_t first_end = node_list.find_first_of(",-]", i + 1);
    const size_t close = node_list.find(']', i + 1);
    if (close == std::string::npos || first_end == i + 1)
      return absl::InvalidArgumentError(absl::StrCat("cannot read SLURM node list '", node_list, "'"));
    host += node_list.substr(i + 1, first_end - i - 1);
    i = close + 1;
  }
  if (host.empty() || host.find(']') != std::string::npos)
    return absl::InvalidArgumentError(absl::StrCat("cannot read SLURM node list '", node_list, "'"));
  return host;
}

absl::StatusOr<int64_t> FirstSlurmTaskCount(const std::string& tasks_per_node) {
  const std::string first = tasks_per_node.substr(0, tasks_per_node.find_first_of("(,"));
  int64_t n = 0;
  if (!absl::SimpleAtoi(first, &n) || n < 1)
    return absl::InvalidArgumentError(absl::StrCat("cannot read SLURM_TASKS_PER_NODE='", tasks_per_node, "'"));
  return n;
}

absl::StatusOr<std::optional<LaunchEnvironment>> ReadLaunchEnvironment(const EnvLookup& env) {
  LaunchEnvironment e;
  std::optional<std::string> master_addr = env("MASTER_ADDR");
  if (env("RANK")) {
    e.launcher = "torchrun";
    Reader r(env, e.launcher);
    AGORA_ASSIGN_OR_RETURN(e.rank, r.Int("RANK", 0));
    AGORA_ASSIGN_OR_RETURN(e.world_size, r.Int("WORLD_SIZE", 1));
    AGORA_ASSIGN_OR_RETURN(e.local_rank, r.IntOr("LOCAL_RANK", 0, e.rank));
    AGORA_ASSIGN_OR_RETURN(e.local_world_size, r.IntOr("LOCAL_WORLD_SIZE", 1, e.world_size));
    if (!master_addr) return absl::InvalidArgumentError("torchrun environment: MASTER_ADDR is not set");
    e.agent_store = env("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
    AGORA_ASSIGN_OR_RETURN(e.restart_count, r.IntOr("TORCHELASTIC_RESTART_COUNT", 0, 0));
  } else if (env("OMPI_COMM_WORLD_RANK")) {
    e.launcher = "Open MPI";
    Reader r(env, e.launcher);
    AGORA_ASSIGN_OR_RETURN(e.rank, r.Int("OMPI_COMM_WORLD_RANK", 0));
    AGORA_ASSIGN_OR_RETURN(e.world_size, r.Int("OMPI_COMM_WORLD_SIZE", 1));
    AGORA_ASSIGN_OR_RETURN(e.local_rank, r.Int("OMPI_COMM_WORLD_LOCAL_RANK", 0));
    AGORA_ASSIGN_OR_RETURN(e.local_world_size, r.Int("OMPI_COMM_WORLD_LOCAL_SIZE", 1));
    // Open MPI does not name a master host; one node needs none.
    if (!master_addr && e.local_world_size != e.world_size)
      return absl::InvalidArgumentError(
          "Open MPI environment spans several nodes: set MASTER_ADDR to the host of rank 0 (mpirun -x "
          "MASTER_ADDR=...)");
  } else if (env("SLURM_PROCID") && env("SLURM_NTASKS")) {
    e.launcher = "SLURM";
    Reader r(env, e.launcher);
    AGORA_ASSIGN_OR_RETURN(e.rank, r.Int("SLURM_PROCID", 0));
    AGORA_ASSIGN_OR_RETURN(e.world_size, r.Int("SLURM_NTASKS", 1));
    AGORA_ASSIGN_OR_RETURN(e.local_rank, r.IntOr("SLURM_LOCALID", 0, 0));
    if (env("SLURM_NTASKS_PER_NODE")) {
      AGORA_ASSIGN_OR_RETURN(e.local_world_size, r.Int("SLURM_NTASKS_PER_NODE", 1));
    } else if (std::optional<std::string> tasks = env("SLURM_TASKS_PER_NODE")) {
      AGORA_ASSIGN_OR_RETURN(e.local_world_size, FirstSlurmTaskCount(*tasks));
    } else {
      e.local_world_size = e.world_size;
    }
    if (!master_addr) {
      std::optional<std::string> nodes = env("SLURM_STEP_NODELIST");
      if (!nodes) nodes = env("SLURM_JOB_NODELIST");
      if (!nodes)
        return absl::InvalidArgumentError(
            "SLURM environment: neither MASTER_ADDR nor SLURM_STEP_NODELIST/SLURM_JOB_NODELIST is set");
      absl::StatusOr<std::string> first = FirstSlurmHost(*nodes);
      if (!first.ok()) return absl::InvalidArgumentError(absl::StrCat("SLURM environment: ", first.status().message()));
      master_addr = *first;
    }
  } else {
    return std::nullopt;
  }
  e.master_addr = master_addr.value_or("127.0.0.1");
  AGORA_ASSIGN_OR_RETURN(e.master_port, Reader(env, e.launcher).IntOr("MASTER_PORT", 1, 29500));
  AGORA_RETURN_IF_ERROR(Check(e));
  return e;
}

absl::StatusOr<std::optional<LaunchEnvironment>> ReadLaunchEnvironment() {
  return ReadLaunchEnvironment([](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  });
}

}  // namespace agora
