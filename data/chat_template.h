// Chat templates: a Conversation rendered as token ids, with labels that train only the assistant's turns.
//
// Every content is stripped of surrounding ASCII whitespace. Rendering encodes segment by segment (each piece of
// template markup, then each content) and concatenates the ids, as torchtune does (its
// tokenize_messages_no_special_tokens encodes message by message). That equals one encode of the whole rendered
// string except possibly at segment boundaries, where a tokenizer with a dummy prefix adds a "▁" and merges never
// cross. Contents are encoded with parse_special=false, so text like "<s>" in user data never becomes a control
// token; markup is encoded with parse_special=true; BOS/EOS and other special tokens are appended as ids.
//
// The formats, segments separated by " | ", T = trained (label = id), everything else kIgnoreLabel:
//
// llama2 (Meta's reference `chat_completion`): per user/assistant exchange
//     <s> | [INST] | {user} | [/INST] | T:{assistant}␣ | T:</s>
//   A leading system message is folded into the first user turn as Meta does, one segment:
//     "<<SYS>>\n{system}\n<</SYS>>\n\n{user}" stripped as a whole (so only its trailing whitespace goes).
//   The space Meta writes before </s> ("{answer} ") is kept inside the trained segment: with a Llama-2 tokenizer
//   it is its own "▁" token, and with it the ids equal Meta's single encode of "[INST] {user} [/INST] {answer} "
//   (the chat oracle checks this). Roles must be: [system,] user, assistant, user, assistant, ... ; a final user
//   turn renders as <s> | [INST] | {user} | [/INST], which is also the generation prompt.
//
// llama3: <|begin_of_text|> then per message
//     <|start_header_id|> | {role} | <|end_header_id|> | \n\n | {content} | <|eot_id|>
//   with {content} and <|eot_id|> trained for assistant messages. Any order of roles. The generation prompt
//   appends the header <|start_header_id|> | assistant | <|end_header_id|> | \n\n. The four special tokens must
//   be pieces of the tokenizer's vocabulary.
//
// plain (no role markup): <s> then per message
//     system/user: {content}\n\n (one segment)        assistant: T:{content} | T:</s>
//   i.e. "<s>{system}\n\n{user}\n\n{answer}</s>{user}\n\n{answer}</s>"; the prompt ends after "{user}\n\n".
//
// vicuna (FastChat's vicuna_v1.1, the template MATRIX trains with):
//     <s> | {system} | then per exchange  USER: {user} | ASSISTANT: | T:{assistant} | T:</s>
//   system defaults to FastChat's "A chat between a curious user and an artificial intelligence assistant. ..."
//   line. With a dummy-prefix tokenizer every segment starts with "▁", which is FastChat's " " separator, so the
//   ids equal FastChat's single encode of "{system} USER: {user} ASSISTANT: {answer}</s>" for the first
//   exchange; later exchanges get a "▁" after </s> that FastChat's string lacks. Loss on assistant tokens and
//   </s>, as FastChat's preprocess masks. Roles: [system,] user, assistant, user, ...; the generation prompt
//   ends after "ASSISTANT:".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/batch.h"
#include "data/jsonl_dataset.h"
#include "data/tokenizer.h"

namespace agora {

enum class ChatTemplateKind { kLlama2, kLlama3, kPlain, kVicuna };
// "llama2", "llama3", "plain", "vicuna".
absl::StatusOr<ChatTemplateKind> ParseChatTemplateKind(std::string_view name);
std::string ChatTemplateName(ChatTemplateKind kind);

// FailedPrecondition when the tokenizer lacks a token the template needs (BOS/EOS for llama2 and plain, the four
// special pieces for llama3), naming the token and the template. A per-tokenizer check: the functions below make
// it too, but a data loader can tell a tokenizer problem from a bad record by calling it first.
absl::Status CheckChatTemplate(ChatTemplateKind kind, const Tokenizer& tokenizer);

// The training sample. InvalidArgument for an empty conversation or, for llama2, roles out of order.
absl::StatusOr<TokenizedSample> TokenizeConversation(ChatTemplateKind kind, const Conversation& conversation,
                                                     const Tokenizer& tokenizer);

// The generation prompt for a conversation that ends with a user turn: the same rendering, up to and including
// the assistant header the model should continue from.
absl::StatusOr<std::vector<int32_t>> TokenizePrompt(ChatTemplateKind kind, const Conversation& conversation,
                                                    const Tokenizer& tokenizer);

}  // namespace agora
