// Cheap text similarity for the simulators, on lower-cased alphanumeric words: TF-IDF cosine for an agent's
// memory (which past question is like this one) and ROUGE-L for near-duplicate questions (SELF-ALIGN drops a
// generated question whose ROUGE-L F with a kept one exceeds 0.7, as Self-Instruct does).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

namespace agora {

std::vector<std::string> Words(absl::string_view text);

// ROUGE-L F-measure (beta 1) of the longest common word subsequence: 2PR/(P+R); 0 when either side is empty.
double RougeL(const std::vector<std::string>& a, const std::vector<std::string>& b);

// Documents added one by one; Nearest scores a query against them with IDF over the documents added so far
// (smoothed: log((1+N)/(1+df)) + 1, scikit-learn's default), cosine of the L2-normalised TF-IDF vectors.
class TfidfIndex {
 public:
  void Add(absl::string_view text);
  int64_t size() const { return static_cast<int64_t>(documents_.size()); }
  struct Match {
    int64_t index = -1;  // -1: the index is empty or nothing shares a word
    double cosine = 0.0;
  };
  // The most similar document (the earliest among equals).
  Match Nearest(absl::string_view text) const;

 private:
  std::vector<std::map<std::string, int64_t>> documents_;  // term counts
  std::map<std::string, int64_t> document_frequency_;
};

}  // namespace agora
