// NCCL through c10d's ProcessGroupNCCL (in libtorch_cuda). It exchanges NCCL's unique id through the store and
// creates the communicator on the first collective; its watchdog aborts a collective that outlives `timeout`.
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#include <c10/cuda/CUDAFunctions.h>

#include "trainer/distributed/communicator.h"

namespace agora {

c10::intrusive_ptr<c10d::Backend> CreateNcclGroup(const c10::intrusive_ptr<c10d::Store>& store,
                                                  const LaunchEnvironment& env, std::chrono::milliseconds timeout) {
  TORCH_CHECK(c10::cuda::device_count() > env.local_rank, "NCCL needs a GPU for local rank ", env.local_rank,
              ", but this node has ", static_cast<int>(c10::cuda::device_count()), " (",
              env.local_world_size, " ranks per node)");
  // One GPU per rank, chosen by local rank, before NCCL sees the device.
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(env.local_rank));
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, static_cast<int>(env.rank),
                                                     static_cast<int>(env.world_size), options);
}

}  // namespace agora
