// The loop's options from a recipe (trainer/run_training.h, LoopOptionsFrom): the step count, the warm-up and every
// section's value reach the loop.
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "trainer/recipe.h"
#include "trainer/run_training.h"

namespace agora {
namespace {

using ::testing::HasSubstr;

Recipe Parsed(const std::vector<std::string>& overrides) {
  absl::StatusOr<Recipe> recipe =
      ParseRecipe("model.path: m\ndata.train.path: d\noutput_dir: o\n", "r.yaml", overrides);
  EXPECT_TRUE(recipe.ok()) << recipe.status();
  return *recipe;
}

TEST(LoopOptionsFrom, EverySectionReachesTheLoop) {
  const Recipe recipe =
      Parsed({"training.epochs=3", "training.gradient_accumulation_steps=4", "training.clip_grad_norm=0.5",
              "training.on_nonfinite=stop", "training.stop_after_steps=7", "eval.every_steps=5", "eval.max_batches=2",
              "checkpoint.every_steps=6", "logging.log_every_steps=3", "optimizer.lr=3e-4", "scheduler.name=constant",
              "scheduler.warmup_ratio=0.1", "scheduler.min_lr_ratio=0.2"});
  absl::StatusOr<LoopOptions> o = LoopOptionsFrom(recipe, /*batches_per_epoch=*/10, at::kCPU);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->total_steps, 7) << "3 epochs x 10 batches / 4 per step, rounded down";
  EXPECT_EQ(o->gradient_accumulation_steps, 4);
  EXPECT_EQ(o->clip_grad_norm, 0.5);
  EXPECT_EQ(o->on_nonfinite, NonFinitePolicy::kStop);
  EXPECT_EQ(o->stop_after_steps, 7);
  EXPECT_EQ(o->eval_every_steps, 5);
  EXPECT_EQ(o->eval_max_batches, 2);
  EXPECT_EQ(o->checkpoint_every_steps, 6);
  EXPECT_EQ(o->log_every_steps, 3);
  EXPECT_EQ(o->schedule.kind, ScheduleKind::kConstant);
  EXPECT_EQ(o->schedule.lr, 3e-4);
  EXPECT_EQ(o->schedule.warmup_steps, 1) << "ceil(0.1 x 7)";
  EXPECT_EQ(o->schedule.total_steps, 7);
  EXPECT_EQ(o->schedule.min_lr_ratio, 0.2);
}

TEST(LoopOptionsFrom, MaxStepsWinsOverEpochsAndWarmupStepsAreTakenAsGiven) {
  absl::StatusOr<LoopOptions> o =
      LoopOptionsFrom(Parsed({"training.max_steps=50", "scheduler.warmup_steps=9"}), 10, at::kCPU);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->total_steps, 50);
  EXPECT_EQ(o->schedule.warmup_steps, 9);
  EXPECT_EQ(o->schedule.kind, ScheduleKind::kCosine);
}

TEST(LoopOptionsFrom, BothWarmupKeysAreRefused) {
  absl::StatusOr<LoopOptions> o =
      LoopOptionsFrom(Parsed({"scheduler.warmup_steps=2", "scheduler.warmup_ratio=0.1"}), 10, at::kCPU);
  ASSERT_FALSE(o.ok());
  EXPECT_THAT(std::string(o.status().message()), HasSubstr("scheduler.warmup_steps or scheduler.warmup_ratio"));
}

}  // namespace
}  // namespace agora
