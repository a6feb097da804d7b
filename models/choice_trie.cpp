#include "models/choice_trie.h"

#include <algorithm>

namespace agora {

ChoiceTrie::ChoiceTrie(const std::vector<std::vector<int64_t>>& choices) : nodes_(1) {
  for (const std::vector<int64_t>& choice : choices) {
    int64_t node = kRoot;
    for (int64_t token : choice) {
      auto [it, inserted] = nodes_[node].children.emplace(token, static_cast<int64_t>(nodes_.size()));
      if (inserted) nodes_.emplace_back();
      node = it->second;
    }
    nodes_[node].complete = true;
    longest_ = std::max<int64_t>(longest_, static_cast<int64_t>(choice.size()));
  }
}

std::vector<int64_t> ChoiceTrie::Next(int64_t node) const {
  std::vector<int64_t> tokens;
  for (const auto& [token, child] : nodes_.at(node).children) tokens.push_back(token);
  return tokens;
}

int64_t ChoiceTrie::Follow(int64_t node, int64_t token) const {
  const auto& children = nodes_.at(node).children;
  const auto it = children.find(token);
  return it == children.end() ? -1 : it->second;
}

}  // namespace agora
