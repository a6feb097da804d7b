// Reading the model's free-text replies: the first line, a role in [brackets], a list of roles, a numbered
// list, a "- " list. Each parser returns what it found (possibly nothing); the simulators decide the fallback
// and count it, so a reply that does not parse never stops a run.
#pragma once

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

namespace agora {

// The first non-empty line, whitespace-trimmed ("" when there is none).
std::string FirstLine(absl::string_view text);

// The text inside the first [...], trimmed; "" when none. `opened` = the prompt ended with "[" already, so the
// reply starts inside the brackets.
std::string FirstBracketed(absl::string_view text, bool opened);

// Every [...] on the first line(s), trimmed, empty and repeated ones (case-insensitively) left out. `opened` as
// above.
std::vector<std::string> BracketedList(absl::string_view text, bool opened);

// The items of a numbered list "1. a\n2. b" (also "1)"); `first_numbered` = the prompt ended with "1." so the
// reply's first line is item 1 without its number. Stops at the first line that is not an item.
std::vector<std::string> NumberedItems(absl::string_view text, bool first_numbered);

// The items of a "- " list whose first "- " the prompt wrote: the first line, then each "- " line.
std::vector<std::string> DashItems(absl::string_view text);

// ASCII whitespace trimmed from both ends.
std::string Trimmed(absl::string_view text);

}  // namespace agora
