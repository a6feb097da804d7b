// Who this process is in a multi-process job, read from the variables the launcher set. Agora ships no launcher
// of its own (beyond `agora launch`, which sets torchrun's variables): it joins the ones clusters use.
//   torchrun / agora launch: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT
//                            (+ TORCHELASTIC_USE_AGENT_STORE: torchrun's agent already serves the TCPStore)
//   Open MPI (mpirun):       OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE; MASTER_ADDR (required
//                            unless every rank is on one node), MASTER_PORT
//   SLURM (srun):            SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE or
//                            SLURM_TASKS_PER_NODE; the master is the first host of SLURM_STEP_NODELIST
//                            (or SLURM_JOB_NODELIST) unless MASTER_ADDR is set
// The first family present wins, in that order (mpirun inside an sbatch allocation sets both Open MPI's and
// SLURM's variables; only Open MPI's describe the ranks). MASTER_PORT defaults to 29500.
// No torch here: parsing is testable on its own.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace agora {

struct LaunchEnvironment {
  std::string launcher;  // "torchrun", "Open MPI" or "SLURM": named in errors
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;
  int64_t local_world_size = 1;
  std::string master_addr;
  int64_t master_port = 29500;
  // torchrun's elastic agent hosts the TCPStore at MASTER_ADDR:MASTER_PORT itself: every rank is a client.
  bool agent_store = false;
  int64_t restart_count = 0;  // TORCHELASTIC_RESTART_COUNT: keeps a restarted group's keys apart
};

// Reads a variable; nullopt when unset. Tests pass a map instead of the process environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// nullopt when no launcher variables are set (a plain single-process run); an error naming the variable when
// one is malformed or inconsistent (rank outside [0, world size), a node list that cannot be read ...).
absl::StatusOr<std::optional<LaunchEnvironment>> ReadLaunchEnvironment(const EnvLookup& env);
absl::StatusOr<std::optional<LaunchEnvironment>> ReadLaunchEnvironment();  // the process environment

// The first host of a SLURM host list: "gpu[003-005,9],cpu1" -> "gpu003", "a,b" -> "a".
absl::StatusOr<std::string> FirstSlurmHost(const std::string& node_list);

// The per-node task count of SLURM_TASKS_PER_NODE's first entry: "4(x2),3" -> 4.
absl::StatusOr<int64_t> FirstSlurmTaskCount(const std::string& tasks_per_node);

}  // namespace agora
