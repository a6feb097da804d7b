// A Stable Alignment sandbox interaction log (its per-agent JSONL or JSON array), converted to rated groups.
#include "data/sandbox_groups.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = agora::fuzz::WriteScratchFile(agora::fuzz::AsText(data, size), ".json");
  agora::SandboxConversionStats stats;
  absl::StatusOr<std::vector<agora::RatedResponses>> groups = agora::SandboxLogsToGroups({path}, {}, &stats);
  if (!groups.ok()) return 0;
  const std::string written = agora::SandboxGroupsToJson(*groups);
  AGORA_FUZZ_CHECK(written.empty() || written.front() == '[');
  return 0;
}
