#include "data/bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "util/read_file.h"
#include "util/status_macros.h"

namespace agora {
namespace {

using nlohmann::json;

// GPT-2's pre-tokenizer regex, which ByteLevel(use_regex=true) applies.
constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Length of the well-formed UTF-8 sequence at s[i], or 0 when the bytes there are not one; `valid_prefix` gets
// the length of the longest prefix that could still start a valid sequence (at least 1), which is how much
// Unicode's "maximal subpart" rule (and Rust's from_utf8_lossy) replaces by one U+FFFD.
size_t Utf8SequenceLength(std::string_view s, size_t i, size_t& valid_prefix) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  const uint8_t lead = b(0);
  valid_prefix = 1;
  size_t n = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) n = 2;
  else if (lead >= 0xE0 && lead <= 0xEF) n = 3, lo = lead == 0xE0 ? 0xA0 : 0x80, hi = lead == 0xED ? 0x9F : 0xBF;
  else if (lead >= 0xF0 && lead <= 0xF4) n = 4, lo = lead == 0xF0 ? 0x90 : 0x80, hi = lead == 0xF4 ? 0x8F : 0xBF;
  else return 0;
  for (size_t k = 1; k < n; ++k) {
    if (i + k >= s.size()) return 0;
    const uint8_t c = b(k);
    if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) return 0;
    valid_prefix = k + 1;
  }
  return n;
}

// Rust's String::from_utf8_lossy, which the library's ByteLevel decoder ends with.
std::string Utf8Lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    size_t prefix = 1;
    const size_t n = Utf8SequenceLength(bytes, i, prefix);
    if (n > 0) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      i += prefix;
    }
  }
  return out;
}

size_t Utf8CharLength(uint8_t lead) { return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// The BOS token text of the post-processor's single-sequence template, if it starts with a special token.
std::optional<std::string> TemplateBos(const json& processor) {
  if (!processor.is_object()) return std::nullopt;
  const std::string type = processor.value("type", "");
  if (type == "Sequence") {
    for (const json& p : processor.value("processors", json::array()))
      if (auto bos = TemplateBos(p)) return bos;
    return std::nullopt;
  }
  if (type != "TemplateProcessing" || !processor.contains("single") || processor["single"].empty()) return std::nullopt;
  const json& first = processor["single"][0];
  if (!first.contains("SpecialToken")) return std::nullopt;
  return first["SpecialToken"].value("id", "");
}

}  // namespace

struct BpeTokenizer::Regex {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Regex() { pcre2_code_free(code); }
};

BpeTokenizer::BpeTokenizer() = default;
BpeTokenizer::~BpeTokenizer() = default;

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Load(const std::filesystem::path& tokenizer_json) {
  AGORA_ASSIGN_OR_RETURN(std::string text, ReadFile(tokenizer_json));
  return FromJson(text, tokenizer_json.string());
}

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::FromJson(std::string_view json_text,
                                                                     std::string_view origin_view) {
  const std::string origin(origin_view);
  auto refuse = [&](const std::string& what) {
    return absl::UnimplementedError(absl::StrCat(origin, ": ", what, "; Agora reads byte-level BPE tokenizers "
                                                 "(the Llama-3 kind)"));
  };
  const json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(origin, ": not a JSON object"));
  std::unique_ptr<BpeTokenizer> t(new BpeTokenizer());
  std::string pattern;
  try {
    const json& model = j.at("model");
    if (model.value("type", "") != "BPE") return refuse(absl::StrCat("model type \"", model.value("type", ""), "\""));
    if (j.contains("normalizer") && !j["normalizer"].is_null()) return refuse("a normalizer is set");
    if (model.value("byte_fallback", false)) return refuse("byte_fallback is set (a sentencepiece-style BPE)");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix", "dropout"})
      if (model.contains(key) && !model[key].is_null() && model[key] != "") return refuse(absl::StrCat("model.", key, " is set"));
    t->ignore_merges_ = model.value("ignore_merges", false);

    // The pre-tokenizer: Sequence[Split(regex, Isolated), ByteLevel(use_regex=false)] or ByteLevel(use_regex=true).
    const json& pre = j.at("pre_tokenizer");
    const json* byte_level = nullptr;
    if (pre.value("type", "") == "Sequence" && pre.at("pretokenizers").size() == 2) {
      const json& split = pre["pretokenizers"][0];
      byte_level = &pre["pretokenizers"][1];
      if (split.value("type", "") != "Split" || split.value("behavior", "") != "Isolated" ||
          split.value("invert", false) || !split.at("pattern").contains("Regex") ||
          byte_level->value("use_regex", true))
        return refuse("pre_tokenizer is not Sequence[Split(Regex, Isolated), ByteLevel(use_regex=false)]");
      pattern = split["pattern"]["Regex"].get<std::string>();
    } else if (pre.value("type", "") == "ByteLevel" && pre.value("use_regex", true)) {
      byte_level = &pre;
      pattern = kGpt2Pattern;
    } else {
      return refuse(absl::StrCat("pre_tokenizer ", pre.dump()));
    }
    if (byte_level->value("type", "") != "ByteLevel" || byte_level->value("add_prefix_space", false))
      return refuse("the ByteLevel pre-tokenizer adds a prefix space");

    // Vocabulary, then added tokens (which may extend it). The piece table is sized by the largest id, so a
    // crafted id of 2^31 must not reach it: ids are dense in the files tokenizers writes, and one whose ids
    // leave more holes than it lists tokens is refused (the table stays within twice the file's entries).
    const json& vocab = model.at("vocab");
    const json added_tokens = j.value("added_tokens", json::array());
    const int64_t id_limit = 2 * static_cast<int64_t>(vocab.size() + added_tokens.size());
    auto token_id = [&](const json& id_json, const std::string& token) -> absl::StatusOr<int32_t> {
      if (!id_json.is_number_integer() || id_json.get<int64_t>() < 0 || id_json.get<int64_t>() >= id_limit)
        return absl::InvalidArgumentError(absl::StrCat(origin, ": token ", nlohmann::json(token).dump(), " has id ",
                                                       id_json.dump(), "; expected an integer in [0, ", id_limit,
                                                       ") (twice the number of vocab and added tokens)"));
      return static_cast<int32_t>(id_json.get<int64_t>());
    };
    for (const auto& [piece, id_json] : vocab.items()) {
      AGORA_ASSIGN_OR_RETURN(const int32_t id, token_id(id_json, piece));
      if (static_cast<size_t>(id) >= t->pieces_.size()) t->pieces_.resize(id + 1);
      t->pieces_[id] = piece;
      t->ids_[piece] = id;
    }
    t->special_.assign(t->pieces_.size(), false);
    for (const json& added : added_tokens) {
      const std::string content = added.at("content").get<std::string>();
      AGORA_ASSIGN_OR_RETURN(const int32_t id, token_id(added.at("id"), content));
      for (const char* option : {"single_word", "lstrip", "rstrip"})
        if (added.value(option, false)) return refuse(absl::StrCat("added token ", content, " sets ", option));
      if (static_cast<size_t>(id) >= t->pieces_.size()) {
        t->pieces_.resize(id + 1);
        t->special_.resize(id + 1, false);
      }
      t->pieces_[id] = content;
      t->special_[id] = added.value("special", false);
      t->ids_[content] = id;
      t->added_.emplace_back(content, id);
    }
    std::stable_sort(t->added_.begin(), t->added_.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    for (const auto& [content, id] : t->added_)
      if (!content.empty()) t->added_first_byte_[static_cast<uint8_t>(content[0])] = true;

    // GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the others shift to 256 + n.
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      AppendUtf8(printable ? b : 256 + n++, t->byte_to_char_[b]);
      t->char_to_byte_[t->byte_to_char_[b]] = static_cast<uint8_t>(b);
      if (!t->ids_.contains(t->byte_to_char_[b]))
        return absl::InvalidArgumentError(absl::StrCat(origin, ": the vocabulary lacks the byte-level token for byte ", b));
    }

    // Merges: "left right" strings or [left, right] pairs; rank = position.
    const json& merges = model.at("merges");
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      std::string left, right;
      if (merges[rank].is_string()) {
        const std::string m = merges[rank].get<std::string>();
        const size_t space = m.find(' ');
        if (space == std::string::npos) return absl::InvalidArgumentError(absl::StrCat(origin, ": merge ", rank, " \"", m, "\" has no space"));
        left = m.substr(0, space);
        right = m.substr(space + 1);
      } else {
        left = merges[rank].at(0).get<std::string>();
        right = merges[rank].at(1).get<std::string>();
      }
      const auto l = t->ids_.find(left), r = t->ids_.find(right), m = t->ids_.find(left + right);
      if (l == t->ids_.end() || r == t->ids_.end() || m == t->ids_.end())
        return absl::InvalidArgumentError(absl::StrCat(origin, ": merge ", rank, " (", left, " ", right,
                                                       ") names a token the vocabulary lacks"));
      t->merges_.try_emplace(PairKey(l->second, r->second), static_cast<int32_t>(rank), m->second);
    }

    if (std::optional<std::string> bos = TemplateBos(j.value("post_processor", json()))) {
      if (auto id = t->PieceToId(*bos)) t->bos_id_ = *id;
    }
    if (auto eos = t->PieceToId("<|end_of_text|>")) t->eos_id_ = *eos;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": ", e.what()));
  }

  // The split regex: UTF mode with Unicode properties (\p{L}, \s as Unicode whitespace), JIT-compiled.
  int error = 0;
  PCRE2_SIZE offset = 0;
  t->regex_ = std::make_unique<Regex>();
  t->regex_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                  PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
  if (t->regex_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return absl::InvalidArgumentError(absl::StrCat(origin, ": the pre-tokenizer regex does not compile at offset ",
                                                   offset, ": ", reinterpret_cast<const char*>(message)));
  }
  t->regex_->jit = pcre2_jit_compile(t->regex_->code, PCRE2_JIT_COMPLETE) == 0;
  return t;
}

std::optional<int32_t> BpeTokenizer::PieceToId(std::string_view piece) const {
  const auto it = ids_.find(std::string(piece));
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

std::string BpeTokenizer::IdToPiece(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < pieces_.size() ? pieces_[id] : "";
}

bool BpeTokenizer::SetEosToken(std::string_view token) {
  std::optional<int32_t> id = PieceToId(token);
  if (id) eos_id_ = *id;
  return id.has_value();
}

std::vector<int32_t> BpeTokenizer::MergePiece(const std::string& mapped) const {
  if (ignore_merges_) {
    if (auto it = ids_.find(mapped); it != ids_.end()) return {it->second};
  }
  std::vector<int32_t> symbols;
  for (size_t i = 0; i < mapped.size();) {
    const size_t n = Utf8CharLength(static_cast<uint8_t>(mapped[i]));
    symbols.push_back(ids_.at(mapped.substr(i, n)));  // every alphabet character is a token (checked at load)
    i += n;
  }
  // Merge the lowest-ranked adjacent pair, leftmost among equals, until none is left: the order the library's
  // heap of (rank, position) gives.
  while (symbols.size() > 1) {
    int32_t best_rank = INT32_MAX, merged = -1;
    size_t best = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      const auto it = merges_.find(PairKey(symbols[i], symbols[i + 1]));
      if (it != merges_.end() && it->second.first < best_rank) {
        best_rank = it->second.first;
        merged = it->second.second;
        best = i;
      }
    }
    if (merged < 0) break;
    symbols[best] = merged;
    symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
  return symbols;
}

void BpeTokenizer::EncodePiece(std::string_view piece, std::vector<int32_t>& ids) const {
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    // Heterogeneous lookup: a hit (most pieces of real text) allocates nothing.
    if (auto it = cache_.find(absl::string_view(piece.data(), piece.size())); it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::string mapped;
  for (char c : piece) mapped += byte_to_char_[static_cast<uint8_t>(c)];
  std::vector<int32_t> out = MergePiece(mapped);
  ids.insert(ids.end(), out.begin(), out.end());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kCacheLimit) cache_.clear();  // bounded memory on endless distinct pieces
  cache_.emplace(std::string(piece), std::move(out));
}

void BpeTokenizer::EncodeOrdinary(std::string_view text, std::vector<int32_t>& ids) const {
  if (text.empty()) return;
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(regex_->code, nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0, last_end = 0;
  while (start < text.size()) {
    const int rc = regex_->jit ? pcre2_jit_match(regex_->code, subject, text.size(), start, 0, match, nullptr)
                               : pcre2_match(regex_->code, subject, text.size(), start, 0, match, nullptr);
    if (rc < 0) break;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match);
    if (ov[0] > last_end) EncodePiece(text.substr(last_end, ov[0] - last_end), ids);  // an unmatched gap
    if (ov[1] > ov[0]) {
      EncodePiece(text.substr(ov[0], ov[1] - ov[0]), ids);
      last_end = start = ov[1];
    } else {  // an empty match: step over one character
      start = ov[0] + Utf8CharLength(static_cast<uint8_t>(text[ov[0]]));
      last_end = ov[0];
    }
  }
  if (last_end < text.size()) EncodePiece(text.substr(last_end), ids);
  pcre2_match_data_free(match);
}

std::vector<int32_t> BpeTokenizer::Encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<int32_t> ids;
  if (options.add_bos && bos_id_) ids.push_back(*bos_id_);
  size_t segment = 0;
  if (options.parse_special && !added_.empty()) {
    // Added tokens first, leftmost-longest; the text between them goes through the regex and BPE.
    for (size_t i = 0; i < text.size(); ++i) {
      if (!added_first_byte_[static_cast<uint8_t>(text[i])]) continue;
      for (const auto& [content, id] : added_) {
        if (content.empty() || text.compare(i, content.size(), content) != 0) continue;
        EncodeOrdinary(text.substr(segment, i - segment), ids);
        ids.push_back(id);
        segment = i + content.size();
        i = segment - 1;
        break;
      }
    }
  }
  EncodeOrdinary(text.substr(segment), ids);
  if (options.add_eos && eos_id_) ids.push_back(*eos_id_);
  return ids;
}

std::string BpeTokenizer::Decode(absl::Span<const int32_t> ids) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= pieces_.size() || special_[id]) continue;
    // Like the library's ByteLevel decoder: a token made of alphabet characters gives their bytes, any other
    // token (e.g. a non-special added token) its own text.
    const std::string& piece = pieces_[id];
    std::string token_bytes;
    bool mapped = true;
    for (size_t i = 0; i < piece.size() && mapped;) {
      const size_t n = Utf8CharLength(static_cast<uint8_t>(piece[i]));
      const auto it = char_to_byte_.find(piece.substr(i, n));
      if (it == char_to_byte_.end()) mapped = false;
      else token_bytes += static_cast<char>(it->second);
      i += n;
    }
    bytes += mapped ? token_bytes : piece;
  }
  return Utf8Lossy(bytes);
}

}  // namespace agora
