// What the loop does with a step whose loss or gradient norm is not finite (recipe key training.on_nonfinite),
// apart from the loop so a recipe can name it without torch.
#pragma once

#include <string>

namespace agora {

enum class NonFinitePolicy {
  kSkip,  // drop the step's update, log it, go on
  kStop,  // end the run with an error (checkpoints already written stay as they are)
};

inline std::string NonFinitePolicyName(NonFinitePolicy policy) {
  return policy == NonFinitePolicy::kSkip ? "skip" : "stop";
}

}  // namespace agora
