// Activation checkpointing: run a block without keeping its intermediate activations and recompute them during
// backward. LibTorch has no C++ torch.utils.checkpoint (pytorch/pytorch#52744), so this is the reentrant variant
// written as a custom autograd Function: forward runs the block under no-grad and saves only its input; backward
// re-runs it with grad enabled and backpropagates through the recomputed graph, which accumulates the block's
// parameter gradients directly into their .grad.
#pragma once

#include <functional>

#include <ATen/core/Tensor.h>

namespace agora {

// block(x) with activations recomputed in backward. `block` must be deterministic (Llama layers have no dropout)
// and must stay callable until backward has run (capture what it needs by value).
at::Tensor CheckpointedCall(std::function<at::Tensor(const at::Tensor&)> block, const at::Tensor& x);

}  // namespace agora
