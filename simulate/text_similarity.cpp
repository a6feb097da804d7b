#include "simulate/text_similarity.h"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace agora {

std::vector<std::string> Words(absl::string_view text) {
  std::vector<std::string> words;
  std::string word;
  for (char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!word.empty()) {
      words.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

double RougeL(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  if (a.empty() || b.empty()) return 0.0;
  std::vector<int64_t> row(b.size() + 1, 0), previous(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j)
      row[j] = a[i - 1] == b[j - 1] ? previous[j - 1] + 1 : std::max(previous[j], row[j - 1]);
    std::swap(row, previous);
  }
  const double lcs = static_cast<double>(previous[b.size()]);
  if (lcs == 0) return 0.0;
  const double precision = lcs / static_cast<double>(b.size()), recall = lcs / static_cast<double>(a.size());
  return 2 * precision * recall / (precision + recall);
}

void TfidfIndex::Add(absl::string_view text) {
  std::map<std::string, int64_t> counts;
  for (std::string& w : Words(text)) ++counts[w];
  for (const auto& [word, n] : counts) ++document_frequency_[word];
  documents_.push_back(std::move(counts));
}

TfidfIndex::Match TfidfIndex::Nearest(absl::string_view text) const {
  Match best;
  if (documents_.empty()) return best;
  const double n = static_cast<double>(documents_.size());
  auto idf = [&](const std::string& word) {
    auto it = document_frequency_.find(word);
    const double df = it == document_frequency_.end() ? 0.0 : static_cast<double>(it->second);
    return std::log((1 + n) / (1 + df)) + 1;
  };
  std::map<std::string, int64_t> query;
  for (std::string& w : Words(text)) ++query[w];
  std::map<std::string, double> q;
  double q_norm = 0;
  for (const auto& [word, count] : query) {
    q[word] = static_cast<double>(count) * idf(word);
    q_norm += q[word] * q[word];
  }
  if (q_norm == 0) return best;
  for (size_t d = 0; d < documents_.size(); ++d) {
    double dot = 0, d_norm = 0;
    for (const auto& [word, count] : documents_[d]) {
      const double weight = static_cast<double>(count) * idf(word);
      d_norm += weight * weight;
      if (auto it = q.find(word); it != q.end()) dot += weight * it->second;
    }
    if (d_norm == 0) continue;
    const double cosine = dot / std::sqrt(q_norm * d_norm);
    if (cosine > best.cosine) best = {static_cast<int64_t>(d), cosine};
  }
  return best;
}

}  // namespace agora
