// Every random generator torch keeps for this process (the CPU one and one per visible CUDA device), captured
// as base64 strings for trainer_state.json and restored on resume, so that anything random after a resume
// (sampling during evaluation, dropout if a model ever has it) continues exactly as without the interruption.
// The data order needs none of this: it is a pure function of (seed, epoch).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace agora {

// Keys "cpu", "cuda:0", ...
std::map<std::string, std::string> CaptureRngStates();
// Restores the generators named in `states`. States of CUDA devices this process does not have (a run resumed
// on another machine) are returned, for the caller to report.
absl::StatusOr<std::vector<std::string>> RestoreRngStates(const std::map<std::string, std::string>& states);

}  // namespace agora
