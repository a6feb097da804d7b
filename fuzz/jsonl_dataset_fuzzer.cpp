// A whole dataset file (JSONL or one JSON array; lines cut anywhere, mixed line ends, bad UTF-8): Open indexes
// it under either bad-line policy (the first byte picks), then every indexed record is read back.
#include "data/jsonl_dataset.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const agora::BadLinePolicy policy = data[0] & 1 ? agora::BadLinePolicy::kSkip : agora::BadLinePolicy::kError;
  const auto path = agora::fuzz::WriteScratchFile(agora::fuzz::AsText(data + 1, size - 1), ".jsonl");
  absl::StatusOr<agora::JsonlDataset> dataset = agora::JsonlDataset::Open(path, agora::RecordFormat::kAuto, {}, policy);
  if (!dataset.ok()) return 0;
  for (int64_t i = 0; i < dataset->size(); ++i) {
    // Open validated every record it indexed: reading one back must succeed.
    AGORA_FUZZ_CHECK(dataset->GetRecord(i).ok());
  }
  return 0;
}
