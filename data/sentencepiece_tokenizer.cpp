// Behaviour follows sentencepiece's normalizer.cc (identity rules), bpe_model.cc, model_interface.cc and
// sentencepiece_processor.cc (unknown/byte-fallback handling, decoding); comments point out where matching it
// exactly needs something non-obvious.
#include "data/sentencepiece_tokenizer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <queue>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "data/sentencepiece_model.h"
#include "util/read_file.h"
#include "util/status_macros.h"

namespace agora {
namespace {

// "▁" (U+2581), which sentencepiece substitutes for spaces.
constexpr std::string_view kSpaceSymbol = "\xe2\x96\x81";
// U+FFFD, what sentencepiece turns each byte of malformed UTF-8 into.
constexpr std::string_view kReplacementChar = "\xef\xbf\xbd";

// absl here predates absl::string_view being std::string_view.
absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Length of the well-formed UTF-8 character at the start of `text` by sentencepiece's rules (no overlong forms,
// surrogates or code points past U+10FFFF), or 0 when there is none.
size_t ValidUtf8CharLength(std::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const auto trail = [&](size_t i) { return i < text.size() && (byte(i) & 0xc0) == 0x80; };
  const uint8_t lead = byte(0);
  if (lead < 0x80) return 1;
  if ((lead & 0xe0) == 0xc0 && trail(1)) {
    const uint32_t cp = (lead & 0x1fu) << 6 | (byte(1) & 0x3fu);
    return cp >= 0x80 ? 2 : 0;
  }
  if ((lead & 0xf0) == 0xe0 && trail(1) && trail(2)) {
    const uint32_t cp = (lead & 0x0fu) << 12 | (byte(1) & 0x3fu) << 6 | (byte(2) & 0x3fu);
    return cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff) ? 3 : 0;
  }
  if ((lead & 0xf8) == 0xf0 && trail(1) && trail(2) && trail(3)) {
    const uint32_t cp =
        (lead & 0x07u) << 18 | (byte(1) & 0x3fu) << 12 | (byte(2) & 0x3fu) << 6 | (byte(3) & 0x3fu);
    return cp >= 0x10000 && cp <= 0x10ffff ? 4 : 0;
  }
  return 0;
}

// The character length a UTF-8 lead byte announces, as sentencepiece computes it (1 for stray trail bytes).
size_t Utf8LengthFromLead(char lead) {
  static constexpr uint8_t kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLengths[static_cast<uint8_t>(lead) >> 4];
}

// Appends `bytes` to `out`, each byte that does not belong to a well-formed character replaced by U+FFFD.
void AppendAsValidUtf8(std::string_view bytes, std::string& out) {
  while (!bytes.empty()) {
    const size_t length = ValidUtf8CharLength(bytes);
    if (length == 0) {
      out.append(kReplacementChar);
      bytes.remove_prefix(1);
    } else {
      out.append(bytes.substr(0, length));
      bytes.remove_prefix(length);
    }
  }
}

// The byte a byte-fallback piece "<0xXX>" (two uppercase hex digits) stands for.
std::optional<uint8_t> BytePieceValue(std::string_view piece) {
  if (piece.size() != 6 || !piece.starts_with("<0x") || piece.back() != '>') return std::nullopt;
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const int high = hex(piece[3]);
  const int low = hex(piece[4]);
  if (high < 0 || low < 0) return std::nullopt;
  return static_cast<uint8_t>(high << 4 | low);
}

}  // namespace

void SentencePieceTokenizer::PieceTrie::Insert(std::string_view key, int32_t id) {
  uint32_t node = 0;
  for (const char c : key) {
    const auto [it, inserted] =
        children_.try_emplace(uint64_t{node} << 8 | static_cast<uint8_t>(c), static_cast<uint32_t>(ids_.size()));
    if (inserted) ids_.push_back(-1);
    node = it->second;
  }
  ids_[node] = id;
}

std::pair<size_t, int32_t> SentencePieceTokenizer::PieceTrie::LongestPrefix(std::string_view text) const {
  std::pair<size_t, int32_t> longest = {0, -1};
  uint32_t node = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto it = children_.find(uint64_t{node} << 8 | static_cast<uint8_t>(text[i]));
    if (it == children_.end()) break;
    node = it->second;
    if (ids_[node] >= 0) longest = {i + 1, ids_[node]};
  }
  return longest;
}

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::Load(
    const std::filesystem::path& model_file) {
  AGORA_ASSIGN_OR_RETURN(const std::string bytes, ReadFile(model_file));
  return FromBytes(bytes, model_file.string());
}

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::FromBytes(
    std::string_view bytes, std::string_view origin_name_for_errors) {
  absl::StatusOr<SentencePieceModel> model = ParseSentencePieceModel(bytes);
  if (!model.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(origin_name_for_errors),
                                                   ": malformed sentencepiece model: ", model.status().message()));
  }
  std::unique_ptr<SentencePieceTokenizer> tokenizer(new SentencePieceTokenizer());
  AGORA_RETURN_IF_ERROR(tokenizer->Initialize(*std::move(model), origin_name_for_errors));
  return tokenizer;
}

absl::Status SentencePieceTokenizer::Initialize(SentencePieceModel model, std::string_view origin) {
  AGORA_RETURN_IF_ERROR(CheckSentencePieceModel(model, origin));
  AGORA_RETURN_IF_ERROR(BuildVocabulary(model, origin));

  // Like sentencepiece, bos/eos/pad are the control pieces named by trainer_spec's *_piece fields.
  const auto control_id = [&](std::string_view name) -> std::optional<int32_t> {
    const auto it = reserved_ids_.find(name);
    if (it == reserved_ids_.end() || types_[it->second] != PieceType::kControl) return std::nullopt;
    return it->second;
  };
  bos_id_ = control_id(model.bos_piece);
  eos_id_ = control_id(model.eos_piece);
  pad_id_ = control_id(model.pad_piece);
  unk_surface_ = std::move(model.unk_surface);
  add_dummy_prefix_ = model.add_dummy_prefix;
  remove_extra_whitespaces_ = model.remove_extra_whitespaces;
  escape_whitespaces_ = model.escape_whitespaces;
  return absl::OkStatus();
}

absl::Status SentencePieceTokenizer::BuildVocabulary(SentencePieceModel& model, std::string_view origin) {
  const auto vocab = static_cast<int32_t>(model.pieces.size());
  pieces_.reserve(vocab);
  scores_.reserve(vocab);
  types_.reserve(vocab);
  for (SentencePieceModel::Piece& piece : model.pieces) {
    pieces_.push_back(std::move(piece.text));
    scores_.push_back(piece.score);
    types_.push_back(static_cast<PieceType>(piece.type));  // range-checked by CheckStructure
  }

  // The maps and tries hold views into pieces_, which is not resized from here on.
  std::optional<int32_t> unk_id;
  byte_fallback_ = model.byte_fallback;
  if (byte_fallback_) byte_ids_.assign(256, -1);
  for (int32_t id = 0; id < vocab; ++id) {
    const std::string_view piece = pieces_[id];
    const PieceType type = types_[id];
    const bool mergeable = type == PieceType::kNormal || type == PieceType::kUserDefined || type == PieceType::kUnused;
    if (!(mergeable ? mergeable_ids_ : reserved_ids_).try_emplace(piece, id).second) {
      return InvalidSentencePieceModel(origin, absl::StrCat("piece \"", AsAbsl(piece), "\" (id ", id, ") is defined twice"));
    }
    if (type == PieceType::kUserDefined) user_defined_.Insert(piece, id);
    if (type == PieceType::kUserDefined || type == PieceType::kControl) specials_.Insert(piece, id);
    if (type == PieceType::kUnknown) {
      if (unk_id.has_value()) return InvalidSentencePieceModel(origin, absl::StrCat("two unknown pieces: ids ", *unk_id, " and ", id));
      unk_id = id;
    }
    if (type == PieceType::kByte) {
      if (!byte_fallback_) {
        return InvalidSentencePieceModel(origin,
                       absl::StrCat("byte piece \"", AsAbsl(piece), "\" (id ", id, ") but byte_fallback is off"));
      }
      const std::optional<uint8_t> byte = BytePieceValue(piece);
      if (!byte.has_value()) return InvalidSentencePieceModel(origin, absl::StrCat("malformed byte piece \"", AsAbsl(piece), "\""));
      byte_ids_[*byte] = id;
    }
  }
  if (!unk_id.has_value()) return InvalidSentencePieceModel(origin, "no unknown piece (<unk>)");
  unk_id_ = *unk_id;
  for (size_t byte = 0; byte < byte_ids_.size(); ++byte) {
    if (byte_ids_[byte] < 0) {
      return InvalidSentencePieceModel(origin, absl::StrFormat("byte_fallback is on but piece <0x%02X> is missing", byte));
    }
  }
  return absl::OkStatus();
}

std::optional<int32_t> SentencePieceTokenizer::PieceToId(std::string_view piece) const {
  if (const auto it = reserved_ids_.find(piece); it != reserved_ids_.end()) return it->second;
  if (const auto it = mergeable_ids_.find(piece); it != mergeable_ids_.end()) return it->second;
  return std::nullopt;
}

int32_t SentencePieceTokenizer::LookupId(std::string_view piece) const { return PieceToId(piece).value_or(unk_id_); }

std::string SentencePieceTokenizer::IdToPiece(int32_t id) const {
  return id >= 0 && id < vocab_size() ? pieces_[id] : std::string();
}

std::string SentencePieceTokenizer::Normalize(std::string_view text) const {
  std::string normalized;
  if (remove_extra_whitespaces_) {
    while (text.starts_with(' ')) text.remove_prefix(1);
  }
  if (text.empty()) return normalized;  // no dummy prefix for empty (or all-space) input

  const std::string_view space = escape_whitespaces_ ? kSpaceSymbol : " ";
  normalized.reserve(text.size() + text.size() / 2 + space.size());
  if (add_dummy_prefix_) normalized.append(space);
  bool previous_was_space = remove_extra_whitespaces_;  // so that runs of spaces collapse to one
  while (!text.empty()) {
    const size_t length = ValidUtf8CharLength(text);
    if (length == 0) {  // malformed UTF-8: one byte becomes U+FFFD
      normalized.append(kReplacementChar);
      text.remove_prefix(1);
      previous_was_space = false;
      continue;
    }
    if (text.front() == ' ') {
      if (!previous_was_space) normalized.append(space);
      previous_was_space = remove_extra_whitespaces_;
    } else {
      normalized.append(text.substr(0, length));
      previous_was_space = false;
    }
    text.remove_prefix(length);
  }
  // This also drops "▁" characters that were in the input text, as sentencepiece does.
  if (remove_extra_whitespaces_) {
    while (normalized.ends_with(space)) normalized.resize(normalized.size() - space.size());
  }
  return normalized;
}

std::vector<std::string_view> SentencePieceTokenizer::SegmentBpe(std::string_view normalized) const {
  // The text as a doubly linked list of symbols (byte ranges of `normalized`); merged-away symbols get size 0.
  struct Symbol {
    size_t begin;
    size_t size;
    int64_t prev;
    int64_t next;
    bool frozen;  // user-defined pieces are never merged
  };
  struct Candidate {
    float score;
    int64_t left;
    int64_t right;
    size_t size;  // of the merged piece; a mismatch later means the candidate is stale
  };
  // Highest score first, ties to the leftmost pair.
  const auto lower_priority = [](const Candidate& a, const Candidate& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };

  std::vector<Symbol> symbols;
  for (size_t begin = 0; begin < normalized.size();) {
    const std::string_view rest = normalized.substr(begin);
    const size_t user_defined_length = user_defined_.LongestPrefix(rest).first;
    const size_t length = user_defined_length > 0 ? user_defined_length
                                                  : std::min(Utf8LengthFromLead(rest.front()), rest.size());
    const auto index = static_cast<int64_t>(symbols.size());
    symbols.push_back({begin, length, index - 1, begin + length < normalized.size() ? index + 1 : -1,
                       user_defined_length > 0});
    begin += length;
  }
  const auto text_of = [&](const Symbol& s) { return normalized.substr(s.begin, s.size); };

  std::priority_queue<Candidate, std::vector<Candidate>, decltype(lower_priority)> agenda(lower_priority);
  // UNUSED pieces may be merged through but not output: each is split back into the two symbols it was last
  // queued from (keyed by text, so the last queued pair wins, as in sentencepiece).
  absl::flat_hash_map<std::string_view, std::pair<std::string_view, std::string_view>> unused_splits;
  const auto consider = [&](int64_t left, int64_t right) {
    if (left < 0 || right < 0 || symbols[left].frozen || symbols[right].frozen) return;
    const std::string_view merged = normalized.substr(symbols[left].begin, symbols[left].size + symbols[right].size);
    const auto it = mergeable_ids_.find(merged);
    if (it == mergeable_ids_.end()) return;
    agenda.push({scores_[it->second], left, right, merged.size()});
    if (types_[it->second] == PieceType::kUnused) {
      unused_splits[merged] = {text_of(symbols[left]), text_of(symbols[right])};
    }
  };
  for (size_t i = 1; i < symbols.size(); ++i) consider(static_cast<int64_t>(i) - 1, static_cast<int64_t>(i));

  while (!agenda.empty()) {
    const Candidate top = agenda.top();
    agenda.pop();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    if (left.size == 0 || right.size == 0 || left.size + right.size != top.size) continue;  // stale
    left.size += right.size;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    right.size = 0;
    consider(left.prev, top.left);
    consider(top.left, left.next);
  }

  std::vector<std::string_view> pieces;
  std::vector<std::string_view> pending;  // a stack, so that resegmenting needs no recursion
  for (int64_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) {
    pending.push_back(text_of(symbols[i]));
    while (!pending.empty()) {
      const std::string_view piece = pending.back();
      pending.pop_back();
      const auto split = unused_splits.find(piece);
      if (split != unused_splits.end() && types_[LookupId(piece)] == PieceType::kUnused) {
        pending.push_back(split->second.second);
        pending.push_back(split->second.first);
      } else {
        pieces.push_back(piece);
      }
    }
  }
  return pieces;
}

void SentencePieceTokenizer::EncodeSegment(std::string_view text, std::vector<int32_t>& ids,
                                           std::vector<std::string>* pieces) const {
  const std::string normalized = Normalize(text);
  bool previous_unknown = false;
  for (const std::string_view piece : SegmentBpe(normalized)) {
    const int32_t id = LookupId(piece);
    const bool unknown = id == unk_id_;
    if (unknown && byte_fallback_) {
      for (const char c : piece) {
        const int32_t byte_id = byte_ids_[static_cast<uint8_t>(c)];
        ids.push_back(byte_id);
        if (pieces != nullptr) pieces->push_back(pieces_[byte_id]);
      }
    } else if (unknown && previous_unknown) {
      // sentencepiece folds a run of unknown pieces into one <unk>.
      if (pieces != nullptr) pieces->back().append(piece);
    } else {
      ids.push_back(id);
      if (pieces != nullptr) pieces->emplace_back(piece);
    }
    previous_unknown = unknown;
  }
}

std::vector<int32_t> SentencePieceTokenizer::Encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<int32_t> ids;
  if (options.add_bos && bos_id_.has_value()) ids.push_back(*bos_id_);
  if (options.parse_special) {
    size_t segment_start = 0;
    for (size_t pos = 0; pos < text.size();) {
      const auto [length, id] = specials_.LongestPrefix(text.substr(pos));
      if (length == 0) {
        ++pos;
        continue;
      }
      EncodeSegment(text.substr(segment_start, pos - segment_start), ids, nullptr);
      ids.push_back(id);
      pos += length;
      segment_start = pos;
    }
    EncodeSegment(text.substr(segment_start), ids, nullptr);
  } else {
    EncodeSegment(text, ids, nullptr);
  }
  if (options.add_eos && eos_id_.has_value()) ids.push_back(*eos_id_);
  return ids;
}

std::vector<std::string> SentencePieceTokenizer::EncodeAsPieces(std::string_view text) const {
  std::vector<int32_t> ids;
  std::vector<std::string> pieces;
  EncodeSegment(text, ids, &pieces);
  return pieces;
}

std::string SentencePieceTokenizer::DecodePiece(int32_t id, bool at_start, bool& consumed_leading_space) const {
  consumed_leading_space = false;
  switch (types_[id]) {
    case PieceType::kControl:
      return "";
    case PieceType::kUnknown:
      return unk_surface_;
    default:
      break;
  }
  std::string_view piece = pieces_[id];
  // Undo the dummy prefix: the first piece loses its leading "▁". With remove_extra_whitespaces sentencepiece
  // keeps stripping until some text appears, hence `consumed` stays false then.
  if (at_start && (add_dummy_prefix_ || remove_extra_whitespaces_) && piece.starts_with(kSpaceSymbol)) {
    piece.remove_prefix(kSpaceSymbol.size());
    consumed_leading_space = !remove_extra_whitespaces_;
  }
  return absl::StrReplaceAll(AsAbsl(piece), {{AsAbsl(kSpaceSymbol), " "}});
}

std::string SentencePieceTokenizer::Decode(absl::Span<const int32_t> ids) const {
  std::string text;
  std::string pending_bytes;  // byte-fallback pieces are joined before being read as UTF-8
  bool at_start = true;
  bool consumed_leading_space = false;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) id = unk_id_;
    if (types_[id] == PieceType::kByte) {
      pending_bytes.push_back(static_cast<char>(*BytePieceValue(pieces_[id])));
      continue;
    }
    AppendAsValidUtf8(pending_bytes, text);
    pending_bytes.clear();
    if (consumed_leading_space || !text.empty()) at_start = false;
    text += DecodePiece(id, at_start, consumed_leading_space);
  }
  AppendAsValidUtf8(pending_bytes, text);
  return text;
}

}  // namespace agora
