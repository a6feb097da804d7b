// Hugging Face `tokenizer.json` files of the byte-level BPE kind (Llama-3, GPT-2 style), producing exactly the ids
// of the `tokenizers` library:
//   1. added tokens (<|begin_of_text|>, <|eot_id|>, ...) are matched in the text first, leftmost-longest, when
//      EncodeOptions.parse_special is set (the library always does; Agora only for template markup);
//   2. the rest is split by the pre-tokenizer's regex (Split, "Isolated": matches and the gaps between them are
//      pieces), run with PCRE2 in UTF + Unicode-property mode because the pattern needs \p{L}, \p{N} and a
//      negative look-ahead that std::regex lacks;
//   3. each piece's bytes become the GPT-2 byte-to-unicode alphabet, and BPE merges them by rank (lowest first,
//      leftmost among equals, as the library's heap does); with `ignore_merges` a piece already in the vocabulary
//      is one token;
//   4. add_bos prepends the BOS of the post-processor's template (TemplateProcessing).
// Decoding maps the alphabet back to bytes and repairs invalid UTF-8 as Rust's from_utf8_lossy does; special
// added tokens decode to nothing.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "data/tokenizer.h"

namespace agora {

class BpeTokenizer : public Tokenizer {
 public:
  // Errors name the file: not byte-level BPE (e.g. a sentencepiece-style tokenizer.json), a normalizer, an
  // unsupported pre-tokenizer or added-token option, a regex PCRE2 rejects, an incomplete byte alphabet.
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> Load(const std::filesystem::path& tokenizer_json);
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> FromJson(std::string_view json_text, std::string_view origin);
  ~BpeTokenizer() override;

  std::vector<int32_t> Encode(std::string_view text, const EncodeOptions& options = {}) const override;
  std::string Decode(absl::Span<const int32_t> ids) const override;

  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  std::optional<int32_t> bos_id() const override { return bos_id_; }
  std::optional<int32_t> eos_id() const override { return eos_id_; }
  std::optional<int32_t> pad_id() const override { return std::nullopt; }
  std::optional<int32_t> PieceToId(std::string_view piece) const override;
  std::string IdToPiece(int32_t id) const override;

  // Sets the EOS token by its text (from tokenizer_config.json's eos_token); false when it is not a token.
  bool SetEosToken(std::string_view token);

 private:
  struct Regex;  // the compiled PCRE2 pattern and its JIT stack; defined in the .cpp

  BpeTokenizer();
  // Appends the ids of a text without added tokens: regex pieces, each through BPE.
  void EncodeOrdinary(std::string_view text, std::vector<int32_t>& ids) const;
  // BPE of one pre-tokenized piece (raw bytes), memoised.
  void EncodePiece(std::string_view piece, std::vector<int32_t>& ids) const;
  std::vector<int32_t> MergePiece(const std::string& mapped) const;

  std::vector<std::string> pieces_;          // id -> token text (byte-level alphabet; added tokens verbatim)
  std::vector<bool> special_;                // id -> decodes to nothing
  absl::flat_hash_map<std::string, int32_t> ids_;
  absl::flat_hash_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (left id, right id) -> (rank, merged id)
  std::vector<std::pair<std::string, int32_t>> added_;                 // longest first
  bool added_first_byte_[256] = {};          // bytes an added token can start with
  std::string byte_to_char_[256];            // the GPT-2 alphabet: byte -> its UTF-8 character
  absl::flat_hash_map<std::string, uint8_t> char_to_byte_;
  std::unique_ptr<Regex> regex_;
  bool ignore_merges_ = false;
  std::optional<int32_t> bos_id_, eos_id_;

  static constexpr size_t kCacheLimit = 1 << 18;
  mutable std::mutex cache_mutex_;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace agora
