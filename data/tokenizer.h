// The tokenizer interface every model folder's tokenizer implements (sentencepiece's tokenizer.model, a
// tokenizer.json byte-level BPE; data/load_tokenizer.h picks one from what the folder holds).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/types/span.h"

namespace agora {

struct EncodeOptions {
  bool add_bos = false;
  bool add_eos = false;
  // When true, the literal text of special tokens (e.g. "<s>", "</s>", user-defined pieces) is recognised and
  // emitted as that token's id; the text between them is encoded segment by segment. Off by default so that
  // user-supplied content can never inject control tokens; chat templates turn it on for their own markup.
  bool parse_special = false;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::vector<int32_t> Encode(std::string_view text, const EncodeOptions& options = {}) const = 0;
  // Special/control tokens decode to nothing; byte-fallback tokens are reassembled into UTF-8.
  virtual std::string Decode(absl::Span<const int32_t> ids) const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;
  virtual std::optional<int32_t> pad_id() const = 0;
  // The id of a piece given by its exact text (e.g. "<s>", "▁the"), if the vocabulary has it.
  virtual std::optional<int32_t> PieceToId(std::string_view piece) const = 0;
  // The piece text of an id; an error-free "" for ids outside the vocabulary is not allowed: callers check.
  virtual std::string IdToPiece(int32_t id) const = 0;
};

}  // namespace agora
