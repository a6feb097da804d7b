// How one request's next token is chosen from the model's logits: penalties and biases on the logits, a set of
// allowed tokens (constrained choices), then greedy or sampled (temperature, top-k, top-p, min-p) with the
// request's own generator, so its tokens do not depend on what else is decoded beside it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

namespace agora {

struct SamplingOptions {
  int64_t max_new_tokens = 64;
  double temperature = 0.0;  // 0: greedy (argmax)
  int64_t top_k = 0;         // 0: no top-k filter
  double top_p = 1.0;        // 1: no nucleus filter
  double min_p = 0.0;        // 0: off; else drop tokens less likely than min_p x the most likely one
  // transformers' repetition_penalty (CTRL): the logit of every token already in the prompt or the output is
  // divided by it when positive and multiplied by it when negative. 1: off.
  double repetition_penalty = 1.0;
  int64_t no_repeat_ngram_size = 0;  // 0: off; else no n-gram of prompt + output occurs twice (transformers')
  std::vector<std::pair<int64_t, double>> logit_bias;  // token id, value added to its logit
  uint64_t seed = 0;
  std::vector<int64_t> stop_ids;          // the output ends after one of these (the stop token is kept)
  std::vector<std::string> stop_strings;  // the output ends where its text first contains one (trimmed from it)
  // When not empty, the output is exactly one of these token sequences (e.g. the ratings "1".."7"); it ends as
  // soon as one is complete, or at a stop id once a complete choice could still be extended.
  std::vector<std::vector<int64_t>> choices;
};

// Probabilities [B, V] (fp32) after temperature, top-k, top-p and min-p filtering of logits [B, V]; filtered
// entries are exactly 0. Needs temperature > 0.
at::Tensor SamplingProbabilities(const at::Tensor& logits, const SamplingOptions& options);

// One row's logits [V] (fp32, CPU, changed in place) after the repetition penalty and the n-gram ban over
// `context` (prompt and output so far), the logit biases, and, when `allowed` is given, -inf everywhere else.
void AdjustLogits(at::Tensor& logits, const SamplingOptions& options, const std::vector<int64_t>& context,
                  const std::vector<int64_t>* allowed);

// The next token from adjusted logits [V] (fp32, CPU): argmax when greedy, else drawn with `generator`.
int64_t SampleToken(const at::Tensor& logits, const SamplingOptions& options, at::Generator& generator);

}  // namespace agora
