// agora launch --nproc N [--master_addr A] [--master_port P] <command> [args ...]: runs N copies of
// `agora <command> args` on this node with the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), so `agora launch --nproc 8 train --config r.yaml` is
// `torchrun --nproc-per-node 8 --no-python agora train --config r.yaml` without Python. Like torchrun, it
// forwards SIGTERM/SIGINT to the ranks, stops the others when one rank fails (SIGTERM, then SIGKILL after
// 30 s), and sets OMP_NUM_THREADS=1 unless it is set. Exit code: the first failing rank's (128 + signal when a
// signal ended it), else 0.
// Multi-node jobs use the cluster's launcher (torchrun, srun, mpirun) directly; see the README.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/commands.h"

namespace agora::cli {
namespace {

constexpr char kUsage[] =
    "usage: agora launch --nproc N [--master_addr ADDR] [--master_port PORT] <command> [args ...]\n"
    "  runs N ranks of `agora <command> args` on this node (torchrun's environment variables)";

volatile sig_atomic_t forwarded_signal = 0;
void Remember(int signal) { forwarded_signal = signal; }

// A port the kernel says is free now (torchrun --standalone does the same).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

int ExitCode(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

}  // namespace

int RunLaunch(int argc, char** argv) {
  int64_t nproc = 0, port = 0;
  std::string addr = "127.0.0.1";
  int i = 0;
  for (; i < argc && std::strncmp(argv[i], "--", 2) == 0; ++i) {
    std::string flag = argv[i], value;
    if (const size_t eq = flag.find('='); eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    }
    for (size_t k = 2; k < flag.size(); ++k)
      if (flag[k] == '-') flag[k] = '_';  // --master-port is --master_port
    const bool ok = (flag == "--nproc" && absl::SimpleAtoi(value, &nproc) && nproc >= 1) ||
                    (flag == "--master_port" && absl::SimpleAtoi(value, &port) && port >= 1 && port <= 65535) ||
                    (flag == "--master_addr" && !(addr = value).empty());
    if (!ok) {
      std::fprintf(stderr, "agora launch: bad flag %s='%s'\n%s\n", flag.c_str(), value.c_str(), kUsage);
      return 2;
    }
  }
  if (nproc < 1 || i >= argc) {
    std::fprintf(stderr, "%s\n", kUsage);
    return 2;
  }
  if (port == 0 && (port = FreePort()) < 0) {
    std::fprintf(stderr, "agora launch: no free TCP port on this host: %s\n", std::strerror(errno));
    return 1;
  }
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) {
    std::fprintf(stderr, "agora launch: cannot find this executable: %s\n", std::strerror(errno));
    return 1;
  }
  self[n] = '\0';
  std::vector<char*> child_argv = {self};
  for (int k = i; k < argc; ++k) child_argv.push_back(argv[k]);
  child_argv.push_back(nullptr);

  signal(SIGTERM, Remember);
  signal(SIGINT, Remember);
  std::vector<pid_t> ranks;
  for (int64_t rank = 0; rank < nproc; ++rank) {
    const pid_t pid = fork();
    if (pid < 0) {
      std::fprintf(stderr, "agora launch: fork failed: %s\n", std::strerror(errno));
      for (pid_t p : ranks) kill(p, SIGKILL);
      return 1;
    }
    if (pid == 0) {
      signal(SIGTERM, SIG_DFL);
      signal(SIGINT, SIG_DFL);
      const std::string values[][2] = {{"RANK", absl::StrCat(rank)},
                                       {"LOCAL_RANK", absl::StrCat(rank)},
                                       {"WORLD_SIZE", absl::StrCat(nproc)},
                                       {"LOCAL_WORLD_SIZE", absl::StrCat(nproc)},
                                       {"GROUP_RANK", "0"},
                                       {"MASTER_ADDR", addr},
                                       {"MASTER_PORT", absl::StrCat(port)}};
      for (const auto& [name, value] : values) setenv(name.c_str(), value.c_str(), 1);
      // As torchrun: one intra-op thread per rank unless the user says otherwise, so N ranks do not each start
      // a thread per core.
      if (nproc > 1) setenv("OMP_NUM_THREADS", "1", 0);
      execv(self, child_argv.data());
      std::fprintf(stderr, "agora launch: cannot run %s: %s\n", self, std::strerror(errno));
      _exit(127);
    }
    ranks.push_back(pid);
  }

  int exit_code = 0;
  size_t running = ranks.size();
  bool stopping = false;
  std::chrono::steady_clock::time_point kill_at;
  while (running > 0) {
    if (forwarded_signal != 0 && !stopping) {  // the launcher was asked to stop: so are the ranks
      for (pid_t p : ranks)
        if (p > 0) kill(p, forwarded_signal);
      stopping = true;
      kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    }
    int status = 0;
    const pid_t done = waitpid(-1, &status, WNOHANG);
    if (done > 0) {
      for (size_t r = 0; r < ranks.size(); ++r) {
        if (ranks[r] != done) continue;
        ranks[r] = -1;
        --running;
        const int code = ExitCode(status);
        if (code != 0 && exit_code == 0) {
          exit_code = code;
          std::fprintf(stderr, "agora launch: rank %zu exited with %s %d; stopping the other ranks\n", r,
                       WIFEXITED(status) ? "code" : "signal", WIFEXITED(status) ? code : WTERMSIG(status));
          if (!stopping) {
            for (pid_t p : ranks)
              if (p > 0) kill(p, SIGTERM);
            stopping = true;
            kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(30);
          }
        }
      }
      continue;
    }
    if (stopping && std::chrono::steady_clock::now() > kill_at)
      for (pid_t p : ranks)
        if (p > 0) kill(p, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return exit_code;
}

}  // namespace agora::cli
