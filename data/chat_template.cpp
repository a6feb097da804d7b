#include "data/chat_template.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace agora {
namespace {

constexpr char kBeginOfText[] = "<|begin_of_text|>";
constexpr char kStartHeader[] = "<|start_header_id|>";
constexpr char kEndHeader[] = "<|end_header_id|>";
constexpr char kEndOfTurn[] = "<|eot_id|>";

std::string_view StripAscii(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// Appends segments to a sample; trained segments get their ids as labels, the others kIgnoreLabel.
class Renderer {
 public:
  explicit Renderer(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}

  void Markup(std::string_view text) { Add(tokenizer_.Encode(text, {.parse_special = true}), false); }
  void Content(std::string_view text, bool trained) { Add(tokenizer_.Encode(text), trained); }
  void Id(int32_t id, bool trained) { Add({id}, trained); }

  TokenizedSample Take() { return std::move(sample_); }

 private:
  void Add(const std::vector<int32_t>& ids, bool trained) {
    for (int32_t id : ids) {
      sample_.ids.push_back(id);
      sample_.labels.push_back(trained ? id : kIgnoreLabel);
    }
  }

  const Tokenizer& tokenizer_;
  TokenizedSample sample_;
};

absl::StatusOr<int32_t> RequiredPiece(const Tokenizer& tokenizer, const char* piece, ChatTemplateKind kind) {
  std::optional<int32_t> id = tokenizer.PieceToId(piece);
  if (!id) {
    return absl::FailedPreconditionError(absl::StrCat("chat template ", ChatTemplateName(kind),
                                                      " needs the special token ", piece,
                                                      ", which the tokenizer's vocabulary lacks"));
  }
  return *id;
}

absl::StatusOr<std::pair<int32_t, int32_t>> BosEos(const Tokenizer& tokenizer, ChatTemplateKind kind) {
  if (!tokenizer.bos_id() || !tokenizer.eos_id()) {
    return absl::FailedPreconditionError(absl::StrCat("chat template ", ChatTemplateName(kind),
                                                      " needs BOS and EOS tokens; the tokenizer lacks ",
                                                      tokenizer.bos_id() ? "EOS" : "BOS"));
  }
  return std::make_pair(*tokenizer.bos_id(), *tokenizer.eos_id());
}

// [system,] then strictly alternating user/assistant, starting with user (llama2 and vicuna). Returns the index
// of the first user message.
absl::StatusOr<size_t> CheckAlternatingRoles(const std::vector<Message>& m, ChatTemplateKind kind) {
  const size_t first = m[0].role == "system" ? 1 : 0;
  for (size_t i = first; i < m.size(); ++i) {
    const char* expected = (i - first) % 2 == 0 ? "user" : "assistant";
    if (m[i].role != expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          ChatTemplateName(kind), " template: message ", i, " has role \"", m[i].role, "\", expected \"", expected,
          "\" (roles must be [system,] user, assistant, user, assistant, ...)"));
    }
  }
  if (first == m.size())
    return absl::InvalidArgumentError(absl::StrCat(ChatTemplateName(kind), " template: a system message without a user turn"));
  return first;
}

// Meta's llama-2 chat_completion.
absl::StatusOr<TokenizedSample> RenderLlama2(const Conversation& c, const Tokenizer& tokenizer) {
  AGORA_ASSIGN_OR_RETURN(auto bos_eos, BosEos(tokenizer, ChatTemplateKind::kLlama2));
  const auto [bos, eos] = bos_eos;
  const std::vector<Message>& m = c.messages;
  AGORA_ASSIGN_OR_RETURN(const size_t first, CheckAlternatingRoles(m, ChatTemplateKind::kLlama2));
  const std::string system_prefix =
      first == 1 ? absl::StrCat("<<SYS>>\n", m[0].content, "\n<</SYS>>\n\n") : std::string();

  Renderer r(tokenizer);
  for (size_t i = first; i < m.size(); i += 2) {
    const std::string user = i == first ? absl::StrCat(system_prefix, m[i].content) : m[i].content;
    r.Id(bos, false);
    r.Markup("[INST]");
    r.Content(StripAscii(user), false);
    r.Markup("[/INST]");
    if (i + 1 < m.size()) {
      r.Content(absl::StrCat(std::string(StripAscii(m[i + 1].content)), " "), true);
      r.Id(eos, true);
    }
  }
  return r.Take();
}

absl::StatusOr<TokenizedSample> RenderLlama3(const Conversation& c, const Tokenizer& tokenizer,
                                             bool add_generation_prompt) {
  constexpr ChatTemplateKind kind = ChatTemplateKind::kLlama3;
  AGORA_ASSIGN_OR_RETURN(int32_t begin, RequiredPiece(tokenizer, kBeginOfText, kind));
  AGORA_ASSIGN_OR_RETURN(int32_t start_header, RequiredPiece(tokenizer, kStartHeader, kind));
  AGORA_ASSIGN_OR_RETURN(int32_t end_header, RequiredPiece(tokenizer, kEndHeader, kind));
  AGORA_ASSIGN_OR_RETURN(int32_t eot, RequiredPiece(tokenizer, kEndOfTurn, kind));
  Renderer r(tokenizer);
  auto header = [&](std::string_view role) {
    r.Id(start_header, false);
    r.Content(role, false);
    r.Id(end_header, false);
    r.Content("\n\n", false);
  };
  r.Id(begin, false);
  for (const Message& message : c.messages) {
    const bool trained = message.role == "assistant";
    header(message.role);
    r.Content(StripAscii(message.content), trained);
    r.Id(eot, trained);
  }
  if (add_generation_prompt) header("assistant");
  return r.Take();
}

absl::StatusOr<TokenizedSample> RenderPlain(const Conversation& c, const Tokenizer& tokenizer) {
  AGORA_ASSIGN_OR_RETURN(auto bos_eos, BosEos(tokenizer, ChatTemplateKind::kPlain));
  Renderer r(tokenizer);
  r.Id(bos_eos.first, false);
  for (const Message& message : c.messages) {
    if (message.role == "assistant") {
      r.Content(StripAscii(message.content), true);
      r.Id(bos_eos.second, true);
    } else {
      r.Content(absl::StrCat(std::string(StripAscii(message.content)), "\n\n"), false);
    }
  }
  return r.Take();
}

// FastChat's vicuna_v1.1 (see the header for how segments meet FastChat's separators).
absl::StatusOr<TokenizedSample> RenderVicuna(const Conversation& c, const Tokenizer& tokenizer) {
  constexpr char kDefaultSystem[] =
      "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
      "detailed, and polite answers to the user's questions.";
  AGORA_ASSIGN_OR_RETURN(auto bos_eos, BosEos(tokenizer, ChatTemplateKind::kVicuna));
  const std::vector<Message>& m = c.messages;
  AGORA_ASSIGN_OR_RETURN(const size_t first, CheckAlternatingRoles(m, ChatTemplateKind::kVicuna));
  Renderer r(tokenizer);
  r.Id(bos_eos.first, false);
  r.Content(first == 1 ? StripAscii(m[0].content) : std::string_view(kDefaultSystem), false);
  for (size_t i = first; i < m.size(); i += 2) {
    r.Content(absl::StrCat("USER: ", std::string(StripAscii(m[i].content))), false);
    r.Markup("ASSISTANT:");
    if (i + 1 < m.size()) {
      r.Content(StripAscii(m[i + 1].content), true);
      r.Id(bos_eos.second, true);
    }
  }
  return r.Take();
}

absl::StatusOr<TokenizedSample> Render(ChatTemplateKind kind, const Conversation& conversation,
                                       const Tokenizer& tokenizer, bool generation_prompt) {
  if (conversation.messages.empty()) return absl::InvalidArgumentError("empty conversation: no message to render");
  switch (kind) {
    case ChatTemplateKind::kLlama2: return RenderLlama2(conversation, tokenizer);
    case ChatTemplateKind::kLlama3: return RenderLlama3(conversation, tokenizer, generation_prompt);
    case ChatTemplateKind::kPlain: return RenderPlain(conversation, tokenizer);
    case ChatTemplateKind::kVicuna: return RenderVicuna(conversation, tokenizer);
  }
  return absl::InternalError("unknown chat template");
}

}  // namespace

absl::StatusOr<ChatTemplateKind> ParseChatTemplateKind(std::string_view name) {
  if (name == "llama2") return ChatTemplateKind::kLlama2;
  if (name == "llama3") return ChatTemplateKind::kLlama3;
  if (name == "plain") return ChatTemplateKind::kPlain;
  if (name == "vicuna") return ChatTemplateKind::kVicuna;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown chat template \"", std::string(name), "\" (expected llama2, llama3, plain or vicuna)"));
}

std::string ChatTemplateName(ChatTemplateKind kind) {
  switch (kind) {
    case ChatTemplateKind::kLlama2: return "llama2";
    case ChatTemplateKind::kLlama3: return "llama3";
    case ChatTemplateKind::kPlain: return "plain";
    case ChatTemplateKind::kVicuna: return "vicuna";
  }
  return "?";
}

absl::Status CheckChatTemplate(ChatTemplateKind kind, const Tokenizer& tokenizer) {
  if (kind != ChatTemplateKind::kLlama3) return BosEos(tokenizer, kind).status();
  for (const char* piece : {kBeginOfText, kStartHeader, kEndHeader, kEndOfTurn})
    AGORA_RETURN_IF_ERROR(RequiredPiece(tokenizer, piece, kind).status());
  return absl::OkStatus();
}

absl::StatusOr<TokenizedSample> TokenizeConversation(ChatTemplateKind kind, const Conversation& conversation,
                                                     const Tokenizer& tokenizer) {
  AGORA_RETURN_IF_ERROR(CheckChatTemplate(kind, tokenizer));
  return Render(kind, conversation, tokenizer, /*generation_prompt=*/false);
}

absl::StatusOr<std::vector<int32_t>> TokenizePrompt(ChatTemplateKind kind, const Conversation& conversation,
                                                    const Tokenizer& tokenizer) {
  AGORA_RETURN_IF_ERROR(CheckChatTemplate(kind, tokenizer));
  if (conversation.messages.empty() || conversation.messages.back().role != "user") {
    return absl::InvalidArgumentError("a generation prompt must end with a user message");
  }
  AGORA_ASSIGN_OR_RETURN(TokenizedSample sample, Render(kind, conversation, tokenizer, /*generation_prompt=*/true));
  return std::move(sample.ids);
}

}  // namespace agora
