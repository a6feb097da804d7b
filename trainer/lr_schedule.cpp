#include "trainer/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "absl/strings/str_cat.h"

namespace agora {

absl::StatusOr<ScheduleKind> ParseScheduleKind(std::string_view name) {
  if (name == "cosine") return ScheduleKind::kCosine;
  if (name == "constant") return ScheduleKind::kConstant;
  return absl::InvalidArgumentError(absl::StrCat("scheduler.name: expected cosine or constant, got '",
                                                 std::string(name), "'"));
}

double LrSchedule::At(int64_t step) const {
  // Warm-up reaches the full rate on its last step (step warmup_steps - 1), as transformers' schedules do with
  // step counted from 1.
  if (step < warmup_steps) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  if (kind == ScheduleKind::kConstant) return lr;
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - warmup_steps - 1);
  const double progress = std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps));
  const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  return lr * (min_lr_ratio + (1.0 - min_lr_ratio) * cosine);
}

}  // namespace agora
