// The factory that reads a Hugging Face model folder's tokenizer, whichever kind it ships.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>

#include "absl/status/statusor.h"
#include "data/tokenizer.h"

namespace agora {

// tokenizer.model (sentencepiece) when the folder has one, else tokenizer.json (byte-level BPE, with
// tokenizer_config.json's eos_token); NotFound when it has neither.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::filesystem::path& model_dir);

// A folder's tokenizer must fit its model: every id it can give below config.json's vocab_size (else an id past
// the embedding would abort the first forward). InvalidArgument names the folder and both sizes.
absl::Status CheckTokenizerFitsModel(const Tokenizer& tokenizer, int64_t vocab_size,
                                     const std::filesystem::path& model_dir);

}  // namespace agora
