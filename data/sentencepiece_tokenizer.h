// An in-house reader and encoder/decoder for sentencepiece `tokenizer.model` files of the Llama-1/2 kind (BPE
// with the identity normalizer), producing exactly the ids of the official sentencepiece library. We do not link
// libsentencepiece: its copy of the gflags/glog symbols clashes with libtorch's.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "data/sentencepiece_model.h"
#include "data/tokenizer.h"

namespace agora {
class SentencePieceTokenizer : public Tokenizer {
 public:
  // Errors: NotFound/PermissionDenied when the file cannot be read, InvalidArgument for a malformed file,
  // Unimplemented for valid models this reader does not support (non-BPE, a non-identity normalizer, ...).
  // Messages name the file.
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> Load(const std::filesystem::path& model_file);
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> FromBytes(std::string_view bytes,
                                                                           std::string_view origin_name_for_errors);

  std::vector<int32_t> Encode(std::string_view text, const EncodeOptions& options = {}) const override;
  // Ids outside the vocabulary decode like <unk>.
  std::string Decode(absl::Span<const int32_t> ids) const override;

  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  std::optional<int32_t> bos_id() const override { return bos_id_; }
  std::optional<int32_t> eos_id() const override { return eos_id_; }
  std::optional<int32_t> pad_id() const override { return pad_id_; }
  std::optional<int32_t> PieceToId(std::string_view piece) const override;
  std::string IdToPiece(int32_t id) const override;

  // What sentencepiece's EncodeAsPieces returns for `text` (no options): IdToPiece of Encode's ids, except that a
  // run of characters mapped to <unk> (models without byte fallback) appears as that run of normalized text.
  std::vector<std::string> EncodeAsPieces(std::string_view text) const;

 private:
  // The piece types of sentencepiece_model.proto (ModelProto.SentencePiece.Type).
  enum class PieceType : uint8_t {
    kNormal = 1,
    kUnknown = 2,
    kControl = 3,
    kUserDefined = 4,
    kUnused = 5,
    kByte = 6,
  };

  // Byte-wise trie for longest-prefix matching of a set of pieces.
  class PieceTrie {
   public:
    void Insert(std::string_view key, int32_t id);
    // The length and id of the longest inserted key that prefixes `text`; {0, -1} when none does.
    std::pair<size_t, int32_t> LongestPrefix(std::string_view text) const;

   private:
    absl::flat_hash_map<uint64_t, uint32_t> children_;  // (node << 8 | byte) -> child node
    std::vector<int32_t> ids_ = {-1};                   // id of the key ending at each node; node 0 is the root
  };

  SentencePieceTokenizer() = default;
  // Validates the model and builds the lookup tables; `origin` names the file in errors.
  absl::Status Initialize(SentencePieceModel model, std::string_view origin);
  // Fills the piece tables and checks what needs them (duplicates, <unk>, byte pieces).
  absl::Status BuildVocabulary(SentencePieceModel& model, std::string_view origin);

  // Appends the ids of one piece of text encoded on its own (dummy prefix included), and the pieces when
  // `pieces` is not null.
  void EncodeSegment(std::string_view text, std::vector<int32_t>& ids, std::vector<std::string>* pieces) const;
  std::string Normalize(std::string_view text) const;
  // sentencepiece's BPE: the pieces, as views of `normalized`, before ids and byte fallback are applied.
  std::vector<std::string_view> SegmentBpe(std::string_view normalized) const;
  // The id sentencepiece gives a piece's text: control/unknown/byte pieces first, then the others, else <unk>.
  int32_t LookupId(std::string_view piece) const;
  // The text a non-byte piece decodes to; `at_start` says no text has been produced yet (dummy prefix).
  std::string DecodePiece(int32_t id, bool at_start, bool& consumed_leading_space) const;

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<PieceType> types_;
  // sentencepiece keeps two maps, consulted in this order: control/unknown/byte pieces, and the pieces BPE may
  // produce by merging (normal, user-defined, unused).
  absl::flat_hash_map<std::string_view, int32_t> reserved_ids_;
  absl::flat_hash_map<std::string_view, int32_t> mergeable_ids_;
  std::vector<int32_t> byte_ids_;  // id of <0xXX> for each byte value, when byte_fallback
  PieceTrie user_defined_;         // matched as single, never-merged symbols
  PieceTrie specials_;             // control and user-defined pieces, for EncodeOptions.parse_special
  int32_t unk_id_ = 0;
  std::optional<int32_t> bos_id_, eos_id_, pad_id_;
  std::string unk_surface_;
  bool byte_fallback_ = false;
  bool add_dummy_prefix_ = true;
  bool remove_extra_whitespaces_ = true;
  bool escape_whitespaces_ = true;
};

}  // namespace agora
