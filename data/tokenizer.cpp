#include "data/tokenizer.h"

#include <system_error>

#include "absl/strings/str_cat.h"
#include "data/sentencepiece_tokenizer.h"
#include "util/status_macros.h"

namespace agora {

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::filesystem::path& model_dir) {
  std::error_code error;
  const std::filesystem::path sentencepiece_file = model_dir / "tokenizer.model";
  if (std::filesystem::exists(sentencepiece_file, error)) {
    AGORA_ASSIGN_OR_RETURN(std::unique_ptr<SentencePieceTokenizer> tokenizer,
                           SentencePieceTokenizer::Load(sentencepiece_file));
    return tokenizer;
  }
  const std::filesystem::path hf_file = model_dir / "tokenizer.json";
  if (std::filesystem::exists(hf_file, error)) {
    return absl::UnimplementedError(absl::StrCat(hf_file.string(),
                                                 ": tokenizer.json BPE is not supported yet; this model folder needs "
                                                 "a sentencepiece tokenizer.model"));
  }
  return absl::NotFoundError(
      absl::StrCat(model_dir.string(), ": no tokenizer found (expected tokenizer.model or tokenizer.json)"));
}

}  // namespace agora
