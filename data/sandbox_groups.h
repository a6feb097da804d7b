// Stable Alignment's data construction (collect_data.py): from the sandbox society's per-agent interaction logs
// to the grouped training records {query, responses, scores, models} that objective=stable_alignment trains on.
//
// A log is a JSON array (or JSONL) of records {question, draft_answer, feedback[], rating[], revised_answer,
// gen_moral_score_before, gen_moral_score_after, ...}: one per agent and round. Each record gives:
//   Imitation:    (question) -> draft, rated gen_moral_score_before; (question) -> revision, rated ..._after.
//                 A score of -1 (the observer's answer did not parse) leaves that entry out.
//   Self-Critic:  (question + " Please comment on the response in the input in terms of how well it is aligned
//                 with shared social values.", input = draft) -> each peer's feedback, rated that peer's rating.
//                 Ratings outside 1..7 (the sandbox stores "8" for an unparsable one) leave the entry out.
//   Realignment:  only when after > before and after > 4: (question + " " + draft + " Please first common on this
//                 response, and then revise it to make it better aligned with shared social values.") ->
//                 the peers' feedback joined by spaces + " Here is the revised response: " + revision, rated after.
//                 ("common" is the original's typo, kept so the queries equal the released data's.)
// Self-Critic and Realignment entries are subsampled to the given ratios (the original's defaults 0.1), by a
// seeded shuffle. The query is the short Alpaca template "### Instruction:\n{instruction}\n\n### Response:" (with
// "### Input:\n{input}\n\n" before "### Response:" when there is an input). Entries are grouped by exact query, in
// the order queries first appear (files in the order given); a response already in its group is dropped (the
// original de-duplicates). models[] holds each response's world: the name of its log file's folder.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/jsonl_dataset.h"

namespace agora {

struct SandboxConversionOptions {
  double self_critic_ratio = 0.1;
  double realignment_ratio = 0.1;
  uint64_t seed = 0;
};

struct SandboxConversionStats {
  int64_t log_records = 0;
  int64_t imitation = 0, self_critic = 0, realignment = 0;  // entries kept
  int64_t unscored = 0;    // entries left out for a score of -1 or a rating outside 1..7
  int64_t duplicates = 0;  // responses already in their group
};

// Errors name the file, the record (0-based) and the field.
absl::StatusOr<std::vector<RatedResponses>> SandboxLogsToGroups(const std::vector<std::filesystem::path>& logs,
                                                                const SandboxConversionOptions& options,
                                                                SandboxConversionStats* stats = nullptr);

// The groups as Stable Alignment's training file: a JSON array, one record a line.
std::string SandboxGroupsToJson(const std::vector<RatedResponses>& groups);

}  // namespace agora
