// What a generation request asks of sampling, without torch: the request file's parser (cli/generation_requests.h)
// fills it in the fuzz build too. models/sampling.h applies it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

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

}  // namespace agora
