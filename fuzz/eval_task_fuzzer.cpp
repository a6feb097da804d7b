// A multiple-choice task file (TruthfulQA mc_task.json, BIG-bench task.json, JSONL; the first byte picks the
// file name): refused, or items with choices, one score per choice.
#include "data/eval_tasks.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const char* const kNames[] = {"_mc_task.json", "_task.json", ".jsonl"};
  const auto path = agora::fuzz::WriteScratchFile(agora::fuzz::AsText(data + 1, size - 1), kNames[data[0] % 3]);
  absl::StatusOr<agora::EvalTask> task = agora::ReadEvalTask(path);
  if (!task.ok()) return 0;
  for (const agora::EvalItem& item : task->items) {
    AGORA_FUZZ_CHECK(!item.choices.choices.empty() && item.choices.choices.size() == item.choices.scores.size());
    if (item.mc2) AGORA_FUZZ_CHECK(item.mc2->choices.size() == item.mc2->scores.size());
  }
  return 0;
}
