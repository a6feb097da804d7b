// The learning-rate schedule (trainer/lr_schedule.h) against its closed form.
#include <cmath>
#include <cstdint>
#include <numbers>

#include <gtest/gtest.h>

#include "trainer/lr_schedule.h"

namespace agora {
namespace {

TEST(LrSchedule, WarmupThenCosineToTheFloorAtTheLastStep) {
  const LrSchedule s{ScheduleKind::kCosine, 1e-3, 4, 20, 0.1};
  for (int64_t k = 0; k < 4; ++k) EXPECT_DOUBLE_EQ(s.At(k), 1e-3 * (k + 1) / 4.0) << k;
  for (int64_t k = 4; k < 20; ++k) {
    const double progress = (k - 4) / 15.0;
    EXPECT_DOUBLE_EQ(s.At(k), 1e-3 * (0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * progress)))) << k;
  }
  EXPECT_DOUBLE_EQ(s.At(3), 1e-3);
  EXPECT_DOUBLE_EQ(s.At(19), 1e-4);
  EXPECT_DOUBLE_EQ(s.At(50), 1e-4) << "past the end it stays at the floor";
  const LrSchedule constant{ScheduleKind::kConstant, 2e-5, 2, 100, 0.0};
  EXPECT_DOUBLE_EQ(constant.At(0), 1e-5);
  EXPECT_DOUBLE_EQ(constant.At(1), 2e-5);
  EXPECT_DOUBLE_EQ(constant.At(99), 2e-5);
  EXPECT_FALSE(ParseScheduleKind("linear").ok());
}

}  // namespace
}  // namespace agora
