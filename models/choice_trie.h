// Constrained choices: the token sequences a request's output may be, as a trie walked one generated token at a
// time. At each step only the tokens that continue some choice are allowed, so the output is always one of them,
// whatever the model prefers (even a random one). Choices are given as token ids, tokenised by the caller the way
// the output will be decoded, so this works with any tokenizer.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

namespace agora {

class ChoiceTrie {
 public:
  explicit ChoiceTrie(const std::vector<std::vector<int64_t>>& choices);

  static constexpr int64_t kRoot = 0;
  // The tokens that continue some choice from `node`.
  std::vector<int64_t> Next(int64_t node) const;
  // Whether a whole choice ends at `node`.
  bool Complete(int64_t node) const { return nodes_.at(node).complete; }
  // The node after `token`; -1 when `token` continues no choice.
  int64_t Follow(int64_t node, int64_t token) const;
  int64_t longest() const { return longest_; }  // tokens in the longest choice

 private:
  struct Node {
    std::map<int64_t, int64_t> children;  // token -> node
    bool complete = false;
  };
  std::vector<Node> nodes_;
  int64_t longest_ = 0;
};

}  // namespace agora
