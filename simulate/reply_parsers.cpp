#include "simulate/reply_parsers.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"

namespace agora {

std::string Trimmed(absl::string_view text) { return std::string(absl::StripAsciiWhitespace(text)); }

std::string FirstLine(absl::string_view text) {
  for (absl::string_view line : absl::StrSplit(text, '\n'))
    if (!absl::StripAsciiWhitespace(line).empty()) return Trimmed(line);
  return "";
}

std::string FirstBracketed(absl::string_view text, bool opened) {
  std::vector<std::string> all = BracketedList(text, opened);
  return all.empty() ? "" : all[0];
}

std::vector<std::string> BracketedList(absl::string_view text, bool opened) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  size_t at = 0;
  bool inside = opened;
  while (at <= text.size()) {
    if (!inside) {
      const size_t open = text.find('[', at);
      if (open == absl::string_view::npos) break;
      at = open + 1;
    }
    inside = false;
    const size_t close = text.find(']', at);
    if (close == absl::string_view::npos) break;
    const absl::string_view inner = text.substr(at, close - at);
    at = close + 1;
    if (inner.find('\n') != absl::string_view::npos) continue;  // a bracket pair spanning lines is not a role
    std::string item = Trimmed(inner);
    if (item.empty() || item.size() > 60) continue;
    if (seen.insert(absl::AsciiStrToLower(item)).second) out.push_back(std::move(item));
  }
  return out;
}

namespace {

// "12. text" or "12) text" -> "text"; false when the line is not an item.
bool StripNumber(absl::string_view line, std::string* item) {
  line = absl::StripLeadingAsciiWhitespace(line);
  size_t digits = 0;
  while (digits < line.size() && std::isdigit(static_cast<unsigned char>(line[digits]))) ++digits;
  if (digits == 0 || digits >= line.size() || (line[digits] != '.' && line[digits] != ')')) return false;
  *item = Trimmed(line.substr(digits + 1));
  return true;
}

}  // namespace

std::vector<std::string> NumberedItems(absl::string_view text, bool first_numbered) {
  std::vector<std::string> out;
  bool first = true;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::string item;
    if (first && first_numbered) {
      item = Trimmed(line);
    } else if (!StripNumber(line, &item)) {
      if (absl::StripAsciiWhitespace(line).empty() && out.empty()) continue;
      break;
    }
    first = false;
    if (!item.empty()) out.push_back(std::move(item));
  }
  return out;
}

std::vector<std::string> DashItems(absl::string_view text) {
  std::vector<std::string> out;
  bool first = true;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::string_view rest = absl::StripLeadingAsciiWhitespace(line);
    if (!first) {
      if (!absl::ConsumePrefix(&rest, "-")) break;
    }
    first = false;
    std::string item = Trimmed(rest);
    if (!item.empty()) out.push_back(std::move(item));
  }
  return out;
}

}  // namespace agora
