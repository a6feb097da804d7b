#include "trainer/resume_policy.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace agora {

bool MayChangeOnResume(const std::string& key) {
  // Sections a run reads only as it goes (or never, in training), and single keys of that kind.
  static const char* const kSections[] = {"eval.", "checkpoint.", "logging.", "distributed.", "scheduler.",
                                          "data.validation.", "simulate.", "closed_loop."};
  static const char* const kKeys[] = {"training.epochs",         "training.max_steps",   "training.batch_size",   "training.stop_after_steps",
                                      "training.clip_grad_norm", "training.on_nonfinite", "optimizer.lr",
                                      "optimizer.weight_decay",  "optimizer.eps",         "resume",
                                      "device",                  "loss",                  "model.attention",
                                      "model.activation_checkpointing", "model.on_nonfinite_weights"};
  for (const char* section : kSections)
    if (absl::StartsWith(key, section)) return true;
  for (const char* name : kKeys)
    if (key == name) return true;
  return false;
}

ResumeChanges CompareForResume(const Recipe& saved, const Recipe& now) {
  const std::vector<std::pair<std::string, std::string>> before = RecipeValues(saved);
  const std::vector<std::pair<std::string, std::string>> after = RecipeValues(now);
  ResumeChanges changes;
  for (size_t i = 0; i < before.size(); ++i) {  // one key table: the same keys in the same order
    if (before[i].second == after[i].second) continue;
    RecipeChange change{before[i].first, before[i].second, after[i].second};
    (MayChangeOnResume(change.key) ? changes.allowed : changes.refused).push_back(std::move(change));
  }
  return changes;
}

std::string DescribeChanges(const std::vector<RecipeChange>& changes) {
  return absl::StrJoin(changes, ", ", [](std::string* out, const RecipeChange& c) {
    absl::StrAppend(out, c.key, " ", c.before.empty() ? "''" : c.before, " -> ", c.after.empty() ? "''" : c.after);
  });
}

}  // namespace agora
