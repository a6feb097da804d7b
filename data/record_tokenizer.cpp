#include "data/record_tokenizer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "data/seeded_permutation.h"
#include "util/status_macros.h"

namespace agora {
namespace {

// The untrained prefix then the trained rest.
TokenizedSample Sequence(std::vector<int32_t> prompt_and_answer, size_t prompt_tokens) {
  TokenizedSample s;
  s.labels = prompt_and_answer;
  std::fill(s.labels.begin(), s.labels.begin() + std::min(prompt_tokens, s.labels.size()), kIgnoreLabel);
  s.ids = std::move(prompt_and_answer);
  return s;
}

absl::StatusOr<TokenizedGroup> StableAlignment(const RatedResponses& group, const RecordTokenizerOptions& options,
                                               const Tokenizer& tokenizer, uint64_t draw_seed) {
  const int64_t n = static_cast<int64_t>(group.responses.size());
  std::vector<int64_t> drawn = SeededPermutation(n, draw_seed, /*stream=*/0);
  drawn.resize(std::min(n, options.responses_per_query));
  std::sort(drawn.begin(), drawn.end());  // the file's order, so a group reads like its record
  const size_t query_tokens = tokenizer.Encode(group.query, {.add_bos = true}).size();
  TokenizedGroup out;
  for (int64_t k : drawn) {
    std::vector<int32_t> ids = tokenizer.Encode(group.query + group.responses[k], {.add_bos = true});
    if (options.append_eos) ids.push_back(*tokenizer.eos_id());
    out.sequences.push_back(Sequence(std::move(ids), query_tokens));
    out.scores.push_back(static_cast<float>(group.scores[k]));
  }
  return out;
}

absl::StatusOr<TokenizedGroup> Dromedary(const InstructionRecord& r, const RecordTokenizerOptions& options,
                                         const Tokenizer& tokenizer) {
  const int64_t prompts = static_cast<int64_t>(options.meta_prompts.size());
  const std::string& meta = options.meta_prompts[((r.example_id % prompts) + prompts) % prompts];
  std::string source = absl::StrCat(meta, "\n", r.instruction, "\n\n");
  if (!r.input.empty()) absl::StrAppend(&source, r.input, "\n\n");
  absl::StrAppend(&source, "### Dromedary");
  std::vector<int32_t> ids = tokenizer.Encode(source, {.add_bos = true});
  TokenizedGroup out;
  if (static_cast<int64_t>(ids.size()) > options.max_source_len) {  // keep BOS and the last tokens
    ids.erase(ids.begin() + 1, ids.end() - (options.max_source_len - 1));
    ++out.truncated;
  }
  const size_t source_tokens = ids.size();
  // "\n" + output, minus what a lone "\n" costs beyond its own piece (sentencepiece's "▁" dummy prefix).
  std::vector<int32_t> target = tokenizer.Encode(absl::StrCat("\n", r.output));
  const std::vector<int32_t> newline = tokenizer.Encode("\n");
  if (newline.size() > 1 && std::equal(newline.begin(), newline.end() - 1, target.begin()))
    target.erase(target.begin(), target.begin() + (newline.size() - 1));
  if (static_cast<int64_t>(target.size()) > options.max_target_len) {
    target.resize(options.max_target_len);
    ++out.truncated;
  }
  ids.insert(ids.end(), target.begin(), target.end());
  out.sequences.push_back(Sequence(std::move(ids), source_tokens));
  out.scores.push_back(0.0f);
  return out;
}

absl::StatusOr<TokenizedGroup> Preference(const PreferencePair& pair, const RecordTokenizerOptions& options,
                                          const Tokenizer& tokenizer) {
  TokenizedGroup out;
  for (const std::string* answer : {&pair.chosen, &pair.rejected}) {
    AGORA_ASSIGN_OR_RETURN(
        TokenizedSample s,
        TokenizeConversation(options.chat_template, Conversation{{{"user", pair.prompt}, {"assistant", *answer}}},
                             tokenizer));
    out.sequences.push_back(std::move(s));
  }
  out.scores = {1.0f, 0.0f};
  return out;
}

}  // namespace

bool HasTrainedToken(const TokenizedSample& s) {
  return std::any_of(s.labels.begin() + std::min<size_t>(1, s.labels.size()), s.labels.end(),
                     [](int32_t l) { return l != kIgnoreLabel; });
}

bool IsGroupFormat(RecordFormat format) {
  return format == RecordFormat::kSandboxGroups || format == RecordFormat::kPreference;
}

absl::Status CheckRecordTokenizer(RecordFormat format, const RecordTokenizerOptions& options,
                                  const Tokenizer& tokenizer) {
  if (options.max_seq_len < 2 || options.responses_per_query < 1 || options.max_source_len < 2 ||
      options.max_target_len < 1)
    return absl::InvalidArgumentError(absl::StrCat(
        "need max_seq_len >= 2, responses_per_query >= 1, max_source_len >= 2 and max_target_len >= 1; got ",
        options.max_seq_len, ", ", options.responses_per_query, ", ", options.max_source_len, ", ",
        options.max_target_len));
  switch (format) {
    case RecordFormat::kSandboxGroups:
    case RecordFormat::kDromedary:
      if (!tokenizer.bos_id() || (options.append_eos && !tokenizer.eos_id()))
        return absl::FailedPreconditionError(absl::StrCat("the tokenizer has no ", tokenizer.bos_id() ? "EOS" : "BOS",
                                                          " token, which these records need"));
      if (format == RecordFormat::kDromedary && options.meta_prompts.empty())
        return absl::FailedPreconditionError("dromedary records need at least one meta prompt (data.meta_prompts)");
      return absl::OkStatus();
    default:
      return CheckChatTemplate(options.chat_template, tokenizer);
  }
}

absl::StatusOr<TokenizedGroup> TokenizeRecord(const Record& record, const RecordTokenizerOptions& options,
                                              const Tokenizer& tokenizer, uint64_t draw_seed) {
  absl::StatusOr<TokenizedGroup> group;
  if (const auto* c = std::get_if<Conversation>(&record)) {
    absl::StatusOr<TokenizedSample> s = TokenizeConversation(options.chat_template, *c, tokenizer);
    if (!s.ok()) return s.status();
    group = TokenizedGroup{{*std::move(s)}, {0.0f}, 0};
  } else if (const auto* g = std::get_if<RatedResponses>(&record)) {
    group = StableAlignment(*g, options, tokenizer, draw_seed);
  } else if (const auto* i = std::get_if<InstructionRecord>(&record)) {
    group = Dromedary(*i, options, tokenizer);
  } else {
    group = Preference(std::get<PreferencePair>(record), options, tokenizer);
  }
  if (!group.ok()) return group.status();
  TokenizedGroup out;
  out.truncated = group->truncated;
  for (size_t k = 0; k < group->sequences.size(); ++k) {
    TokenizedSample& s = group->sequences[k];
    if (static_cast<int64_t>(s.ids.size()) > options.max_seq_len) {
      s.ids.resize(options.max_seq_len);
      s.labels.resize(options.max_seq_len);
      ++out.truncated;
    }
    // Stable Alignment drops an untrainable response; elsewhere the record's sequences stay together (a
    // preference pair missing one side is no pair), and the loader drops the whole record.
    if (!HasTrainedToken(s) && std::holds_alternative<RatedResponses>(record)) continue;
    out.sequences.push_back(std::move(s));
    out.scores.push_back(group->scores[k]);
  }
  return out;
}

}  // namespace agora
