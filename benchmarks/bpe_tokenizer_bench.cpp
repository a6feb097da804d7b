// Encoding throughput of Agora's byte-level BPE (data/bpe_tokenizer.h) on one core.
// Usage: bpe_tokenizer_bench TOKENIZER_JSON TEXT_FILE [REPEATS]
// Encodes the file line by line (lines without their "\n", as a dataset is tokenized record by record) REPEATS
// times (default 3) with a fresh tokenizer each time (so the piece cache starts cold, as in a new process),
// added tokens parsed as the `tokenizers` library does, and prints one JSON line:
// {"bytes": N, "tokens": T, "seconds": [..], "median_mb_per_s": X}. benchmarks/bpe_tokenizer_bench.py runs it
// beside the `tokenizers` library on the same file.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "data/bpe_tokenizer.h"
#include "util/read_file.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TOKENIZER_JSON TEXT_FILE [REPEATS]\n", argv[0]);
    return 2;
  }
  const int repeats = argc > 3 ? std::max(1, std::atoi(argv[3])) : 3;
  absl::StatusOr<std::string> text = agora::ReadFile(argv[2]);
  if (!text.ok()) {
    std::fprintf(stderr, "%s\n", std::string(text.status().message()).c_str());
    return 1;
  }
  std::vector<absl::string_view> lines = absl::StrSplit(*text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  std::vector<double> seconds;
  size_t tokens = 0;
  for (int r = 0; r < repeats; ++r) {
    auto tokenizer = agora::BpeTokenizer::Load(argv[1]);
    if (!tokenizer.ok()) {
      std::fprintf(stderr, "%s\n", std::string(tokenizer.status().message()).c_str());
      return 1;
    }
    const auto start = std::chrono::steady_clock::now();
    tokens = 0;
    for (absl::string_view line : lines)
      tokens += (*tokenizer)->Encode(std::string_view(line.data(), line.size()), {.parse_special = true}).size();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::vector<double> sorted = seconds;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  std::printf("{\"bytes\": %zu, \"tokens\": %zu, \"seconds\": [", text->size(), tokens);
  for (size_t i = 0; i < seconds.size(); ++i) std::printf("%s%.4f", i ? ", " : "", seconds[i]);
  std::printf("], \"median_mb_per_s\": %.2f}\n", text->size() / 1e6 / median);
  return 0;
}
