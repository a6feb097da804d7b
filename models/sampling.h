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

#include "models/sampling_options.h"

namespace agora {

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
