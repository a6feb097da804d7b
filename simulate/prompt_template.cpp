#include "simulate/prompt_template.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "util/read_file.h"

namespace agora {

absl::StatusOr<PromptTemplate> PromptTemplate::Load(const std::filesystem::path& path,
                                                    const std::vector<std::string>& slots) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  return FromText(*std::move(text), path.string(), slots);
}

absl::StatusOr<PromptTemplate> PromptTemplate::FromText(std::string text, const std::string& name,
                                                        const std::vector<std::string>& slots) {
  PromptTemplate t;
  std::set<std::string> seen;
  size_t at = 0;
  while (at < text.size()) {
    const size_t open = text.find('{', at);
    if (open == std::string::npos) {
      t.pieces_.push_back({text.substr(at)});
      break;
    }
    const size_t close = text.find('}', open);
    if (close == std::string::npos)
      return absl::InvalidArgumentError(absl::StrCat(name, ": '{' at offset ", open, " is not closed by '}'"));
    const std::string slot = text.substr(open + 1, close - open - 1);
    if (std::find(slots.begin(), slots.end(), slot) == slots.end())
      return absl::InvalidArgumentError(absl::StrCat(name, ": unknown slot {", slot, "} (this prompt's slots: {",
                                                     absl::StrJoin(slots, "}, {"), "})"));
    if (open > at) t.pieces_.push_back({text.substr(at, open - at)});
    t.pieces_.push_back({slot, true});
    seen.insert(slot);
    at = close + 1;
  }
  for (const std::string& slot : slots)
    if (!seen.count(slot)) return absl::InvalidArgumentError(absl::StrCat(name, ": slot {", slot, "} is missing"));
  return t;
}

std::string PromptTemplate::Fill(const std::map<std::string, std::string>& values) const {
  std::string out;
  for (const Piece& piece : pieces_) {
    if (!piece.slot) {
      out += piece.text;
      continue;
    }
    auto it = values.find(piece.text);
    if (it != values.end()) out += it->second;
  }
  return out;
}

std::string PromptTemplate::FillUpTo(const std::map<std::string, std::string>& values, const std::string& stop) const {
  std::string out;
  for (const Piece& piece : pieces_) {
    if (piece.slot && piece.text == stop) break;
    if (!piece.slot) {
      out += piece.text;
    } else if (auto it = values.find(piece.text); it != values.end()) {
      out += it->second;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string NumberedLines(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) absl::StrAppend(&out, i ? "\n" : "", i + 1, ". ", items[i]);
  return out;
}

}  // namespace agora
