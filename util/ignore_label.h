// The label (loss target) that nothing trains on: PyTorch's cross_entropy ignore_index and Hugging Face's labels
// convention. One name from the chat templates' masks to the loss kernels' targets.
#pragma once

#include <cstdint>

namespace agora {

inline constexpr int64_t kIgnoreLabel = -100;

}  // namespace agora
