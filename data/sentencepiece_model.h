// The fields of a sentencepiece `tokenizer.model` (a serialised sentencepiece_model.proto ModelProto) that
// encoding and decoding need, read with the protobuf wire reader, and the checks sentencepiece makes when it loads
// one. data/sentencepiece_tokenizer.h builds its tables from this.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace agora {

// The fields of a ModelProto that matter for encoding and decoding, with the proto defaults.
struct SentencePieceModel {
  struct Piece {
    std::string text;
    float score = 0;
    int32_t type = 1;  // NORMAL
  };
  std::vector<Piece> pieces;

  bool has_trainer_spec = false;
  int32_t model_type = 1;  // UNIGRAM
  bool treat_whitespace_as_suffix = false;
  bool byte_fallback = false;
  int32_t unk_id = 0;
  int32_t bos_id = 1;
  int32_t eos_id = 2;
  int32_t pad_id = -1;
  std::string unk_surface = " \xe2\x81\x87 ";  // " ⁇ " (U+2047), the default text of <unk> when decoding
  std::string bos_piece = "<s>";
  std::string eos_piece = "</s>";
  std::string pad_piece = "<pad>";

  std::string normalizer_name;
  std::string precompiled_charsmap;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
  std::string denormalizer_charsmap;
};

// InvalidArgument naming the proto path of a malformed field ("ModelProto.pieces[3]: ...").
absl::StatusOr<SentencePieceModel> ParseSentencePieceModel(std::string_view bytes);

// Structural problems first (InvalidArgument: what sentencepiece would reject when loading, except for duplicate,
// unknown and byte pieces, which need the tokenizer's maps), then valid models this reader does not implement
// (Unimplemented: non-BPE, treat_whitespace_as_suffix, a non-identity normalizer). `origin` names the file.
absl::Status CheckSentencePieceModel(const SentencePieceModel& model, std::string_view origin);

// "<origin>: invalid sentencepiece model: <what>", InvalidArgument.
absl::Status InvalidSentencePieceModel(std::string_view origin, std::string_view what);

}  // namespace agora
