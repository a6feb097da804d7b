// How one training record becomes the token sequences an objective sees. A conversation gives one sequence; a
// Stable Alignment group gives up to K responses to its query; a preference pair gives chosen then rejected. Each
// sequence has labels (the tokens its loss trains) and a score, and each method's template and masking follow the
// method's own published code:
//
// conversation (messages, prompt_response, sharegpt): the chat template (data/chat_template.h); score 0.
//
// Stable Alignment (sandbox_groups), as stable_alignment/alignment.py builds it: K responses drawn without
//   replacement (all when there are at most K; a fresh draw per epoch), each sequence = encode(query + response)
//   with BOS, the two strings concatenated as they are; the first len(encode(query)) tokens are not trained;
//   no EOS unless append_eos; score = the response's rating. A response left without a trained token (empty, or
//   cut away by max_seq_len) is dropped from its group.
//
// SELF-ALIGN / Dromedary (dromedary), as Dromedary-2's training code builds it:
//   source = "{meta_prompt}\n{instruction}\n\n" + ("{input}\n\n" if input) + "### Dromedary", with BOS, cut to its
//            LAST max_source_len tokens (BOS kept);
//   target = "\n{output}", encoded after a "\n" so that a dummy-prefix tokenizer adds no "▁" (the "\n" piece is
//            kept and trained), cut to its FIRST max_target_len tokens; no EOS: the data's own "### User" marker
//            is the learned stop. meta_prompt = meta_prompts[example_id % meta_prompts.size()].
//
// preference (DPO): [user: prompt, assistant: chosen] and [user: prompt, assistant: rejected] through the chat
//   template; scores 1 and 0.
//
// Finally every sequence is cut to max_seq_len tokens, keeping its beginning.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/chat_template.h"
#include "data/jsonl_dataset.h"
#include "data/tokenizer.h"

namespace agora {

struct RecordTokenizerOptions {
  ChatTemplateKind chat_template = ChatTemplateKind::kLlama2;  // conversations and preference pairs
  int64_t max_seq_len = 2048;
  int64_t responses_per_query = 3;  // Stable Alignment's K (num_comp)
  bool append_eos = false;          // Stable Alignment: an EOS after each response
  std::vector<std::string> meta_prompts;  // Dromedary: meta-prompt texts
  int64_t max_source_len = 512;     // Dromedary
  int64_t max_target_len = 512;     // Dromedary
};

struct TokenizedGroup {
  std::vector<TokenizedSample> sequences;
  std::vector<float> scores;  // one per sequence
  int64_t truncated = 0;      // sequences cut by max_seq_len (or Dromedary's source/target limits)
};

// FailedPrecondition when the tokenizer lacks what `format`'s records need (BOS/EOS, a template's special tokens)
// or Dromedary has no meta prompt; InvalidArgument for options out of range.
absl::Status CheckRecordTokenizer(RecordFormat format, const RecordTokenizerOptions& options,
                                  const Tokenizer& tokenizer);

// `draw_seed` fixes Stable Alignment's choice of K responses (the loader derives it from seed, epoch and record).
absl::StatusOr<TokenizedGroup> TokenizeRecord(const Record& record, const RecordTokenizerOptions& options,
                                              const Tokenizer& tokenizer, uint64_t draw_seed);

// Whether a sequence trains any token after its first (a packed sequence never trains its first token).
bool HasTrainedToken(const TokenizedSample& sample);

// Whether records of `format` give several sequences that an objective compares (they must share a row).
bool IsGroupFormat(RecordFormat format);

}  // namespace agora
