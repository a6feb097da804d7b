#include "data/sandbox_groups.h"

#include <cmath>
#include <map>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "data/seeded_permutation.h"
#include "nlohmann/json.hpp"
#include "util/json_array_lines.h"
#include "util/read_file.h"
#include "util/status_macros.h"

namespace agora {
namespace {

using json = nlohmann::json;

constexpr char kAskCritic[] =
    " Please comment on the response in the input in terms of how well it is aligned with shared social values.";
constexpr char kAskRealign[] =
    " Please first common on this response, and then revise it to make it better aligned with shared social values.";
constexpr char kRevisedJoin[] = " Here is the revised response: ";

struct Entry {
  std::string instruction, input, output, model;
  double score;
};

std::string AlpacaQuery(const std::string& instruction, const std::string& input) {
  if (input.empty()) return absl::StrCat("### Instruction:\n", instruction, "\n\n### Response:");
  return absl::StrCat("### Instruction:\n", instruction, "\n\n### Input:\n", input, "\n\n### Response:");
}

// One log file's records: a JSON array, or one record per line.
absl::StatusOr<std::vector<json>> ReadLog(const std::filesystem::path& path) {
  AGORA_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  std::vector<json> records;
  const size_t first = text.find_first_not_of(" \t\r\n");
  try {
    if (first != std::string::npos && text[first] == '[') {
      for (json& r : json::parse(text)) records.push_back(std::move(r));
    } else {
      size_t start = 0;
      while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        const std::string line = text.substr(start, end - start);
        if (line.find_first_not_of(" \t\r") != std::string::npos) records.push_back(json::parse(line));
        start = end + 1;
      }
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": not a JSON array or JSONL of records (", e.what(), ")"));
  }
  return records;
}

class LogRecord {
 public:
  LogRecord(const json& r, std::string where) : r_(r), where_(std::move(where)) {}

  absl::StatusOr<std::string> String(const char* field) const {
    const auto it = r_.find(field);
    if (it == r_.end() || !it->is_string()) return Error(field, "a string");
    return it->get<std::string>();
  }
  absl::StatusOr<double> Number(const char* field) const {
    const auto it = r_.find(field);
    if (it == r_.end() || !it->is_number()) return Error(field, "a number");
    return it->get<double>();
  }
  absl::StatusOr<std::vector<std::string>> Strings(const char* field) const {
    const auto it = r_.find(field);
    if (it == r_.end() || !it->is_array()) return Error(field, "an array of strings");
    std::vector<std::string> out;
    for (const json& v : *it) {
      if (!v.is_string()) return Error(field, "an array of strings");
      out.push_back(v.get<std::string>());
    }
    return out;
  }

 private:
  absl::Status Error(const char* field, const char* expected) const {
    return absl::InvalidArgumentError(absl::StrCat(where_, ": field \"", field, "\": expected ", expected));
  }
  const json& r_;
  std::string where_;
};

// A rating as the sandbox stores it: a digit string ("8" when the rater's answer did not parse) or a number.
std::optional<double> PeerRating(const std::string& text) {
  int value;
  if (!absl::SimpleAtoi(text, &value) || value < 1 || value > 7) return std::nullopt;
  return value;
}

bool Scored(double score) { return score >= 1.0 && score <= 7.0; }

// Keeps round(ratio * n) of `entries`, chosen by a seeded shuffle, in their original order.
std::vector<Entry> Subsample(std::vector<Entry> entries, double ratio, uint64_t seed, uint64_t stream) {
  const int64_t n = static_cast<int64_t>(entries.size());
  const int64_t keep = static_cast<int64_t>(std::llround(ratio * static_cast<double>(n)));
  std::vector<int64_t> order = SeededPermutation(n, seed, stream);
  order.resize(std::min(n, keep));
  std::sort(order.begin(), order.end());
  std::vector<Entry> out;
  for (int64_t i : order) out.push_back(std::move(entries[i]));
  return out;
}

}  // namespace

absl::StatusOr<std::vector<RatedResponses>> SandboxLogsToGroups(const std::vector<std::filesystem::path>& logs,
                                                                const SandboxConversionOptions& options,
                                                                SandboxConversionStats* stats) {
  SandboxConversionStats local;
  SandboxConversionStats& st = stats != nullptr ? *stats : local;
  st = {};
  std::vector<Entry> imitation, critic, realign;
  for (const std::filesystem::path& path : logs) {
    AGORA_ASSIGN_OR_RETURN(std::vector<json> records, ReadLog(path));
    const std::string model = path.parent_path().filename().string();
    for (size_t i = 0; i < records.size(); ++i) {
      ++st.log_records;
      const LogRecord r(records[i], absl::StrCat(path.string(), ": record ", i));
      if (!records[i].is_object())
        return absl::InvalidArgumentError(absl::StrCat(path.string(), ": record ", i, ": expected a JSON object"));
      AGORA_ASSIGN_OR_RETURN(std::string question, r.String("question"));
      AGORA_ASSIGN_OR_RETURN(std::string draft, r.String("draft_answer"));
      AGORA_ASSIGN_OR_RETURN(std::string revised, r.String("revised_answer"));
      AGORA_ASSIGN_OR_RETURN(std::vector<std::string> feedback, r.Strings("feedback"));
      AGORA_ASSIGN_OR_RETURN(std::vector<std::string> ratings, r.Strings("rating"));
      AGORA_ASSIGN_OR_RETURN(double before, r.Number("gen_moral_score_before"));
      AGORA_ASSIGN_OR_RETURN(double after, r.Number("gen_moral_score_after"));
      if (feedback.size() != ratings.size())
        return absl::InvalidArgumentError(absl::StrCat(path.string(), ": record ", i, ": field \"rating\": expected ",
                                                       feedback.size(), " ratings, one per feedback, got ",
                                                       ratings.size()));
      for (auto [answer, score] : {std::pair{&draft, before}, std::pair{&revised, after}}) {
        if (Scored(score)) imitation.push_back({question, "", *answer, model, score});
        else ++st.unscored;
      }
      for (size_t k = 0; k < feedback.size(); ++k) {
        if (std::optional<double> rating = PeerRating(ratings[k]))
          critic.push_back({question + kAskCritic, draft, feedback[k], model, *rating});
        else ++st.unscored;
      }
      if (Scored(before) && Scored(after) && after > before && after > 4)
        realign.push_back({absl::StrCat(question, " ", draft, kAskRealign), "",
                           absl::StrCat(absl::StrJoin(feedback, " "), kRevisedJoin, revised), model, after});
    }
  }
  critic = Subsample(std::move(critic), options.self_critic_ratio, options.seed, 1);
  realign = Subsample(std::move(realign), options.realignment_ratio, options.seed, 2);
  st.imitation = static_cast<int64_t>(imitation.size());
  st.self_critic = static_cast<int64_t>(critic.size());
  st.realignment = static_cast<int64_t>(realign.size());

  std::vector<RatedResponses> groups;
  std::map<std::string, size_t> by_query;
  for (const std::vector<Entry>* kind : {&imitation, &critic, &realign}) {
    for (const Entry& e : *kind) {
      const std::string query = AlpacaQuery(e.instruction, e.input);
      auto [it, added] = by_query.emplace(query, groups.size());
      if (added) groups.push_back(RatedResponses{query, {}, {}, {}});
      RatedResponses& g = groups[it->second];
      if (std::find(g.responses.begin(), g.responses.end(), e.output) != g.responses.end()) {
        ++st.duplicates;
        continue;
      }
      g.responses.push_back(e.output);
      g.scores.push_back(e.score);
      g.models.push_back(e.model);
    }
  }
  return groups;
}

std::string SandboxGroupsToJson(const std::vector<RatedResponses>& groups) {
  JsonArrayLines out;
  for (size_t i = 0; i < groups.size(); ++i) {
    nlohmann::ordered_json scores = nlohmann::ordered_json::array();
    // The original's key order; ratings are integers in the sandbox, written as such.
    for (double s : groups[i].scores) {
      if (s == std::floor(s)) scores.push_back(static_cast<int64_t>(s));
      else scores.push_back(s);
    }
    const nlohmann::ordered_json record = {{"query", groups[i].query},
                         {"responses", groups[i].responses},
                         {"scores", scores},
                         {"models", groups[i].models}};
    out.Add(record);
  }
  return std::move(out).Finish();
}

}  // namespace agora
