#include "data/sentencepiece_model.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "util/protobuf_wire.h"
#include "util/status_macros.h"

namespace agora {
namespace {

using protowire::Field;

constexpr size_t kMaxPieceBytes = 8000;  // sentencepiece rejects longer pieces

// Field numbers and enum values of sentencepiece_model.proto.
constexpr uint32_t kModelPieces = 1;
constexpr uint32_t kModelTrainerSpec = 2;
constexpr uint32_t kModelNormalizerSpec = 3;
constexpr uint32_t kModelDenormalizerSpec = 5;
constexpr uint32_t kPieceText = 1;
constexpr uint32_t kPieceScore = 2;
constexpr uint32_t kPieceType = 3;
constexpr uint32_t kTrainerModelType = 3;
constexpr uint32_t kTrainerTreatWhitespaceAsSuffix = 24;
constexpr uint32_t kTrainerByteFallback = 35;
constexpr uint32_t kTrainerUnkId = 40;
constexpr uint32_t kTrainerBosId = 41;
constexpr uint32_t kTrainerEosId = 42;
constexpr uint32_t kTrainerPadId = 43;
constexpr uint32_t kTrainerUnkSurface = 44;
constexpr uint32_t kTrainerBosPiece = 46;
constexpr uint32_t kTrainerEosPiece = 47;
constexpr uint32_t kTrainerPadPiece = 48;
constexpr uint32_t kNormalizerName = 1;
constexpr uint32_t kNormalizerCharsmap = 2;
constexpr uint32_t kNormalizerAddDummyPrefix = 3;
constexpr uint32_t kNormalizerRemoveExtraWhitespaces = 4;
constexpr uint32_t kNormalizerEscapeWhitespaces = 5;
constexpr int32_t kModelTypeBpe = 2;
constexpr int32_t kFirstPieceType = 1;  // NORMAL
constexpr int32_t kLastPieceType = 6;   // BYTE

std::string ModelTypeName(int32_t type) {
  switch (type) {
    case 1:
      return "UNIGRAM";
    case 2:
      return "BPE";
    case 3:
      return "WORD";
    case 4:
      return "CHAR";
  }
  return absl::StrCat("unknown (", type, ")");
}

// Stores a typed field value, or passes its error on.
template <typename T, typename U>
absl::Status Store(absl::StatusOr<T> value, U& out) {
  if (!value.ok()) return value.status();
  out = static_cast<U>(*std::move(value));
  return absl::OkStatus();
}

// Calls `on_field` for each field of `message`; errors are prefixed with `context`, the message's path.
template <typename OnField>
absl::Status ForEachField(std::string_view message, absl::string_view context, OnField on_field) {
  protowire::MessageReader reader(message);
  while (!reader.AtEnd()) {
    absl::StatusOr<Field> field = reader.Next();
    absl::Status status = field.ok() ? on_field(*field) : field.status();
    if (!status.ok()) return absl::InvalidArgumentError(absl::StrCat(context, ": ", status.message()));
  }
  return absl::OkStatus();
}

// sentencepiece falls back to the default piece name when a *_piece field is set but empty.
absl::Status StoreNonEmptyName(const Field& field, std::string& name) {
  AGORA_ASSIGN_OR_RETURN(const std::string_view value, protowire::AsBytes(field));
  if (!value.empty()) name = value;
  return absl::OkStatus();
}

absl::Status ParsePiece(std::string_view message, size_t index, SentencePieceModel::Piece& piece) {
  return ForEachField(message, absl::StrCat("ModelProto.pieces[", index, "]"), [&](const Field& f) -> absl::Status {
    switch (f.number) {
      case kPieceText:
        return Store(protowire::AsBytes(f), piece.text);
      case kPieceScore:
        return Store(protowire::AsFloat(f), piece.score);
      case kPieceType:
        return Store(protowire::AsInt32(f), piece.type);
      default:
        return absl::OkStatus();
    }
  });
}

absl::Status ParseTrainerSpec(std::string_view message, SentencePieceModel& model) {
  return ForEachField(message, "ModelProto.trainer_spec", [&](const Field& f) -> absl::Status {
    switch (f.number) {
      case kTrainerModelType:
        return Store(protowire::AsInt32(f), model.model_type);
      case kTrainerTreatWhitespaceAsSuffix:
        return Store(protowire::AsBool(f), model.treat_whitespace_as_suffix);
      case kTrainerByteFallback:
        return Store(protowire::AsBool(f), model.byte_fallback);
      case kTrainerUnkId:
        return Store(protowire::AsInt32(f), model.unk_id);
      case kTrainerBosId:
        return Store(protowire::AsInt32(f), model.bos_id);
      case kTrainerEosId:
        return Store(protowire::AsInt32(f), model.eos_id);
      case kTrainerPadId:
        return Store(protowire::AsInt32(f), model.pad_id);
      case kTrainerUnkSurface:
        return Store(protowire::AsBytes(f), model.unk_surface);
      case kTrainerBosPiece:
        return StoreNonEmptyName(f, model.bos_piece);
      case kTrainerEosPiece:
        return StoreNonEmptyName(f, model.eos_piece);
      case kTrainerPadPiece:
        return StoreNonEmptyName(f, model.pad_piece);
      default:
        return absl::OkStatus();
    }
  });
}

absl::Status ParseNormalizerSpec(std::string_view message, absl::string_view context, bool is_denormalizer,
                                 SentencePieceModel& model) {
  return ForEachField(message, context, [&](const Field& f) -> absl::Status {
    if (is_denormalizer) {
      return f.number == kNormalizerCharsmap ? Store(protowire::AsBytes(f), model.denormalizer_charsmap)
                                             : absl::OkStatus();
    }
    switch (f.number) {
      case kNormalizerName:
        return Store(protowire::AsBytes(f), model.normalizer_name);
      case kNormalizerCharsmap:
        return Store(protowire::AsBytes(f), model.precompiled_charsmap);
      case kNormalizerAddDummyPrefix:
        return Store(protowire::AsBool(f), model.add_dummy_prefix);
      case kNormalizerRemoveExtraWhitespaces:
        return Store(protowire::AsBool(f), model.remove_extra_whitespaces);
      case kNormalizerEscapeWhitespaces:
        return Store(protowire::AsBool(f), model.escape_whitespaces);
      default:
        return absl::OkStatus();
    }
  });
}

absl::Status Unsupported(std::string_view origin, absl::string_view what) {
  return absl::UnimplementedError(absl::StrCat(std::string(origin), ": ", what));
}

// What sentencepiece would reject when loading, except for duplicate/unknown/byte pieces, which need the maps.
absl::Status CheckStructure(const SentencePieceModel& model, std::string_view origin) {
  if (model.pieces.empty()) return InvalidSentencePieceModel(origin, "empty vocabulary (no pieces)");
  if (model.pieces.size() > static_cast<size_t>(INT32_MAX)) return InvalidSentencePieceModel(origin, "more than 2^31 pieces");
  if (!model.has_trainer_spec) return InvalidSentencePieceModel(origin, "no trainer_spec");
  const auto vocab = static_cast<int32_t>(model.pieces.size());
  for (const auto& [name, id] : {std::pair{"unk_id", model.unk_id}, std::pair{"bos_id", model.bos_id},
                                 std::pair{"eos_id", model.eos_id}, std::pair{"pad_id", model.pad_id}}) {
    if (id < -1 || id >= vocab) {
      return InvalidSentencePieceModel(origin, absl::StrCat("trainer_spec.", name, " ", id, " is out of range for ", vocab, " pieces"));
    }
  }
  for (size_t id = 0; id < model.pieces.size(); ++id) {
    const SentencePieceModel::Piece& piece = model.pieces[id];
    if (piece.type < kFirstPieceType || piece.type > kLastPieceType) {
      return InvalidSentencePieceModel(origin, absl::StrCat("piece ", id, " has unknown type ", piece.type));
    }
    if (piece.text.empty()) return InvalidSentencePieceModel(origin, absl::StrCat("piece ", id, " is empty"));
    if (piece.text.find('\0') != std::string::npos) return InvalidSentencePieceModel(origin, absl::StrCat("piece ", id, " contains NUL"));
    if (piece.text.size() >= kMaxPieceBytes) return InvalidSentencePieceModel(origin, absl::StrCat("piece ", id, " is too long"));
  }
  return absl::OkStatus();
}

// Valid models whose behaviour this reader does not implement.
absl::Status CheckSupported(const SentencePieceModel& model, std::string_view origin) {
  if (model.model_type != kModelTypeBpe) {
    return Unsupported(origin, absl::StrCat("sentencepiece model_type ", ModelTypeName(model.model_type),
                                            " is not supported; only BPE models (Llama-1/2 style) are"));
  }
  if (model.treat_whitespace_as_suffix) {
    return Unsupported(origin, "sentencepiece treat_whitespace_as_suffix=true is not supported");
  }
  if (!model.precompiled_charsmap.empty()) {
    return Unsupported(origin, absl::StrCat("sentencepiece normalizer \"", model.normalizer_name,
                                            "\" (a precompiled character map) is not supported; only the "
                                            "identity normalizer is"));
  }
  if (!model.denormalizer_charsmap.empty()) {
    return Unsupported(origin, "sentencepiece denormalizer_spec with a character map is not supported");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status InvalidSentencePieceModel(std::string_view origin, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(std::string(origin), ": invalid sentencepiece model: ", std::string(what)));
}

absl::StatusOr<SentencePieceModel> ParseSentencePieceModel(std::string_view bytes) {
  // Sub-messages are collected first and parsed after, so that each error carries one path. A sub-message that
  // occurs more than once is parsed once per occurrence, in order: that is protobuf's merge rule.
  std::vector<std::string_view> pieces, trainer_specs, normalizer_specs, denormalizer_specs;
  AGORA_RETURN_IF_ERROR(ForEachField(bytes, "ModelProto", [&](const Field& f) -> absl::Status {
    switch (f.number) {
      case kModelPieces:
        return Store(protowire::AsBytes(f), pieces.emplace_back());
      case kModelTrainerSpec:
        return Store(protowire::AsBytes(f), trainer_specs.emplace_back());
      case kModelNormalizerSpec:
        return Store(protowire::AsBytes(f), normalizer_specs.emplace_back());
      case kModelDenormalizerSpec:
        return Store(protowire::AsBytes(f), denormalizer_specs.emplace_back());
      default:  // self-test data and extensions do not affect tokenization
        return absl::OkStatus();
    }
  }));

  SentencePieceModel model;
  model.pieces.resize(pieces.size());
  for (size_t i = 0; i < pieces.size(); ++i) AGORA_RETURN_IF_ERROR(ParsePiece(pieces[i], i, model.pieces[i]));
  model.has_trainer_spec = !trainer_specs.empty();
  for (std::string_view spec : trainer_specs) AGORA_RETURN_IF_ERROR(ParseTrainerSpec(spec, model));
  for (std::string_view spec : normalizer_specs) {
    AGORA_RETURN_IF_ERROR(ParseNormalizerSpec(spec, "ModelProto.normalizer_spec", false, model));
  }
  for (std::string_view spec : denormalizer_specs) {
    AGORA_RETURN_IF_ERROR(ParseNormalizerSpec(spec, "ModelProto.denormalizer_spec", true, model));
  }
  return model;
}

absl::Status CheckSentencePieceModel(const SentencePieceModel& model, std::string_view origin) {
  // A corrupt file should read as corrupt, not as an unsupported kind of model.
  AGORA_RETURN_IF_ERROR(CheckStructure(model, origin));
  return CheckSupported(model, origin);
}

}  // namespace agora
