// trainer_state.json of a checkpoint: refused, or a state that survives writing out and reading back.
#include "fuzz/fuzz_support.h"
#include "trainer/trainer_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<agora::TrainerState> state = agora::ParseTrainerState(agora::fuzz::AsText(data, size), "fuzz");
  if (!state.ok()) return 0;
  AGORA_FUZZ_CHECK(state->step >= 0 && state->skipped_steps <= state->step && state->world_size >= 1);
  absl::StatusOr<agora::TrainerState> again = agora::ParseTrainerState(agora::TrainerStateToJson(*state), "written");
  AGORA_FUZZ_CHECK(again.ok() && again->step == state->step && again->files == state->files &&
                   again->rng_states == state->rng_states && again->seed == state->seed);
  return 0;
}
