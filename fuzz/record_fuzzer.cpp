// One dataset record (a JSONL line) in each format: messages, prompt_response, sharegpt, dromedary,
// sandbox_groups, preference, or auto-detected. The first byte picks the format.
#include "data/record_formats.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  constexpr agora::RecordFormat kFormats[] = {
      agora::RecordFormat::kAuto,      agora::RecordFormat::kMessages,      agora::RecordFormat::kPromptResponse,
      agora::RecordFormat::kShareGpt,  agora::RecordFormat::kDromedary,     agora::RecordFormat::kSandboxGroups,
      agora::RecordFormat::kPreference};
  const agora::RecordFormat format = kFormats[data[0] % std::size(kFormats)];
  agora::RecordFormat detected = agora::RecordFormat::kAuto;
  absl::StatusOr<agora::Record> record =
      agora::ParseRecord(agora::fuzz::AsText(data + 1, size - 1), format, agora::FieldMap{}, 0, &detected);
  if (record.ok() && format == agora::RecordFormat::kAuto) AGORA_FUZZ_CHECK(detected != agora::RecordFormat::kAuto);
  return 0;
}
