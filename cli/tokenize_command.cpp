// agora tokenize --model DIR [--chat_template T] TEXT | --file F
// What a user debugging a template or a dataset wants to see: the ids the model is given for a text and the
// piece each id stands for. Without a template the text is encoded as training encodes plain text after BOS;
// with one it is rendered as a single user turn's generation prompt, exactly as `agora generate` feeds it.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "data/chat_template.h"
#include "data/load_tokenizer.h"
#include "nlohmann/json.hpp"
#include "util/read_file.h"

ABSL_DECLARE_FLAG(std::string, model);          // cli/model_setup.cpp
ABSL_DECLARE_FLAG(std::string, chat_template);  // cli/model_setup.cpp
ABSL_FLAG(std::string, file, "", "tokenize: read the text from this file instead of the command line");

namespace agora::cli {

int RunTokenize(const std::vector<char*>& positional_args) {
  const std::string model_dir = absl::GetFlag(FLAGS_model), file = absl::GetFlag(FLAGS_file);
  const std::vector<std::string> words(positional_args.begin() + 1, positional_args.end());
  if (model_dir.empty() || (file.empty() == words.empty())) {
    std::fprintf(stderr, "usage: agora tokenize --model DIR [--chat_template T] TEXT | --file F\n");
    return 2;
  }
  std::string text = absl::StrJoin(words, " ");
  if (!file.empty()) {
    absl::StatusOr<std::string> read = ReadFile(file);
    if (!read.ok()) {
      std::fprintf(stderr, "agora tokenize: %s\n", std::string(read.status().message()).c_str());
      return 1;
    }
    text = *std::move(read);
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(model_dir);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "agora tokenize: %s\n", std::string(tokenizer.status().message()).c_str());
    return 1;
  }
  std::vector<int32_t> ids;
  if (const std::string name = absl::GetFlag(FLAGS_chat_template); !name.empty()) {
    absl::StatusOr<ChatTemplateKind> kind = ParseChatTemplateKind(name);
    absl::StatusOr<std::vector<int32_t>> prompt =
        kind.ok() ? TokenizePrompt(*kind, Conversation{{{"user", text}}}, **tokenizer)
                  : absl::StatusOr<std::vector<int32_t>>(kind.status());
    if (!prompt.ok()) {
      std::fprintf(stderr, "agora tokenize: %s\n", std::string(prompt.status().message()).c_str());
      return 1;
    }
    ids = *std::move(prompt);
  } else {
    ids = (*tokenizer)->Encode(text, {.add_bos = (*tokenizer)->bos_id().has_value()});
  }
  // One line per token: position, id, the piece as a JSON string (so spaces, "▁", newlines and bytes show).
  std::printf("pos\tid\tpiece\n");
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string piece = nlohmann::json((*tokenizer)->IdToPiece(ids[i])).dump(-1, ' ', false,
                                                                                  nlohmann::json::error_handler_t::replace);
    std::printf("%zu\t%d\t%s\n", i, ids[i], piece.c_str());
  }
  std::printf("%zu tokens\n", ids.size());
  return 0;
}

}  // namespace agora::cli
