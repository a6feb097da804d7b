// RNG states (trainer/rng_state.h) captured into a checkpoint and restored.
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "trainer/rng_state.h"

namespace agora {
namespace {

TEST(RngState, RestoredGeneratorsRepeatTheirDraws) {
  at::manual_seed(3);
  at::randn({4});
  const std::map<std::string, std::string> saved = CaptureRngStates();
  const at::Tensor first = at::randn({16});
  at::randn({100});
  auto skipped = RestoreRngStates(saved);
  ASSERT_TRUE(skipped.ok()) << skipped.status();
  EXPECT_TRUE(at::equal(first, at::randn({16})));
  // A CUDA state from another machine is reported, not fatal, where that device does not exist.
  std::map<std::string, std::string> foreign = saved;
  foreign["cuda:63"] = saved.at("cpu");
  auto reported = RestoreRngStates(foreign);
  ASSERT_TRUE(reported.ok());
  EXPECT_EQ(*reported, std::vector<std::string>{"cuda:63"});
}

}  // namespace
}  // namespace agora
