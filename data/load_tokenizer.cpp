#include "data/load_tokenizer.h"

#include <system_error>

#include "absl/strings/str_cat.h"
#include "data/bpe_tokenizer.h"
#include "data/sentencepiece_tokenizer.h"
#include "nlohmann/json.hpp"
#include "util/read_file.h"
#include "util/status_macros.h"

namespace agora {

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::filesystem::path& model_dir) {
  std::error_code error;
  if (!std::filesystem::is_directory(model_dir, error))
    return absl::NotFoundError(absl::StrCat(model_dir.string(), std::filesystem::exists(model_dir, error)
                                                                    ? ": not a folder (expected a model folder)"
                                                                    : ": no such model folder"));
  const std::filesystem::path sentencepiece_file = model_dir / "tokenizer.model";
  if (std::filesystem::exists(sentencepiece_file, error)) {
    AGORA_ASSIGN_OR_RETURN(std::unique_ptr<SentencePieceTokenizer> tokenizer,
                           SentencePieceTokenizer::Load(sentencepiece_file));
    return tokenizer;
  }
  // Without tokenizer.model: the byte-level BPE of tokenizer.json (Llama-3). Llama-2 folders ship both files and
  // are read from tokenizer.model above.
  const std::filesystem::path hf_file = model_dir / "tokenizer.json";
  if (std::filesystem::exists(hf_file, error)) {
    AGORA_ASSIGN_OR_RETURN(std::unique_ptr<BpeTokenizer> tokenizer, BpeTokenizer::Load(hf_file));
    // tokenizer_config.json's eos_token (e.g. <|eot_id|> for instruct models) overrides <|end_of_text|>.
    if (auto config = ReadFile(model_dir / "tokenizer_config.json"); config.ok()) {
      const nlohmann::json j = nlohmann::json::parse(*config, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.contains("eos_token") && j["eos_token"].is_string())
        tokenizer->SetEosToken(j["eos_token"].get<std::string>());
    }
    return tokenizer;
  }
  return absl::NotFoundError(
      absl::StrCat(model_dir.string(), ": no tokenizer found (expected tokenizer.model or tokenizer.json)"));
}

absl::Status CheckTokenizerFitsModel(const Tokenizer& tokenizer, int64_t vocab_size,
                                     const std::filesystem::path& model_dir) {
  if (tokenizer.vocab_size() <= vocab_size) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(model_dir.string(), ": the tokenizer has ", tokenizer.vocab_size(),
                                                 " pieces but config.json's vocab_size is ", vocab_size,
                                                 ": its ids would fall outside the model's embedding"));
}

}  // namespace agora
