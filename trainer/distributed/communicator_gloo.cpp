// Gloo through c10d. The torch wheel ships ProcessGroupGloo (in libtorch_cpu) but not gloo's headers, which its
// header includes; Debian's libgloo-dev provides them. Only gloo's declarations are needed here: every gloo
// object is created and used inside libtorch_cpu, this file only holds pointers to them.
#include <cstdlib>
#include <string>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "trainer/distributed/communicator.h"

namespace agora {

c10::intrusive_ptr<c10d::Backend> CreateGlooGroup(const c10::intrusive_ptr<c10d::Store>& store,
                                                  const LaunchEnvironment& env, std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  // The address peers reach this rank at: the interface GLOO_SOCKET_IFNAME names (torch's variable), loopback
  // for a job on this host alone, otherwise the address this host's name resolves to.
  const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
  const bool loopback = env.master_addr == "localhost" || env.master_addr.rfind("127.", 0) == 0;
  if (interface != nullptr && *interface != '\0')
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
  else if (loopback)
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  else
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, static_cast<int>(env.rank),
                                                     static_cast<int>(env.world_size), options);
}

}  // namespace agora
