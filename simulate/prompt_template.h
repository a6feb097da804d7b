// The simulators' prompts: text files a user edits (simulate/prompts/<method>/), with {name} slots the
// simulator fills. Loading checks the slots against what the simulator fills, so a typo in a slot is an error
// naming the file, not a prompt with "{questoin}" sent to the model.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace agora {

class PromptTemplate {
 public:
  // Every {slot} in the file must be one of `slots`, and each of `slots` must occur. InvalidArgument names the
  // file and the slot.
  static absl::StatusOr<PromptTemplate> Load(const std::filesystem::path& path, const std::vector<std::string>& slots);
  // From text (tests); `name` stands for the file in errors.
  static absl::StatusOr<PromptTemplate> FromText(std::string text, const std::string& name,
                                                 const std::vector<std::string>& slots);

  // The text with every slot replaced by its value (values are inserted verbatim; braces in them stay).
  std::string Fill(const std::map<std::string, std::string>& values) const;
  // The text before slot `stop` (its trailing spaces dropped), the other slots filled: the prompt whose reply is
  // the value of `stop`, e.g. a rating constrained to 1..7 before "Reason:".
  std::string FillUpTo(const std::map<std::string, std::string>& values, const std::string& stop) const;

 private:
  struct Piece {
    std::string text;  // literal text, or the slot's name
    bool slot = false;
  };
  std::vector<Piece> pieces_;
};

// "1. a\n2. b" from {"a", "b"}: principles and reasons as the prompts list them.
std::string NumberedLines(const std::vector<std::string>& items);

}  // namespace agora
