#include "trainer/preemption.h"

#include <atomic>
#include <csignal>

namespace agora {
namespace {

std::atomic<int> received{0};

void OnSignal(int signal) {
  if (signal == SIGINT && received.load() != 0) {
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
    return;
  }
  received.store(signal);
}

}  // namespace

void InstallPreemptionHandlers() {
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // blocking reads and writes carry on; the loop looks at the flag
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

int PreemptionSignal() { return received.load(); }

}  // namespace agora
