// Learning rate per optimizer step: linear warm-up from lr/warmup to lr, then cosine decay to min_lr_ratio * lr
// at the last step, or constant. A pure function of the step, so the schedule's checkpoint state is the step.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace agora {

enum class ScheduleKind { kCosine, kConstant };
absl::StatusOr<ScheduleKind> ParseScheduleKind(std::string_view name);  // "cosine" | "constant"
inline std::string ScheduleKindName(ScheduleKind kind) { return kind == ScheduleKind::kCosine ? "cosine" : "constant"; }

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::kCosine;
  double lr = 0.0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double min_lr_ratio = 0.0;

  // Learning rate of the step with 0-based index `step` (the first update uses step 0).
  double At(int64_t step) const;
};

}  // namespace agora
