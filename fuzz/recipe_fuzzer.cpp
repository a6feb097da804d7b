// A recipe YAML and its key=value overrides (after the input's first NUL byte, one a line): refused with a
// message, or a recipe that RecipeToYaml writes and ParseRecipe reads back to the same values.
#include "absl/strings/str_split.h"
#include "fuzz/fuzz_support.h"
#include "trainer/recipe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = agora::fuzz::AsText(data, size);
  const size_t nul = input.find('\0');
  const std::string yaml(input.substr(0, nul));
  std::vector<std::string> overrides;
  if (nul != std::string_view::npos) {
    const std::string_view rest = input.substr(nul + 1);
    for (absl::string_view line : absl::StrSplit(absl::string_view(rest.data(), rest.size()), '\n'))
      overrides.emplace_back(line);
  }
  absl::StatusOr<agora::Recipe> recipe = agora::ParseRecipe(yaml, "fuzz.yaml", overrides);
  if (!recipe.ok()) return 0;
  absl::StatusOr<agora::Recipe> again = agora::ParseRecipe(agora::RecipeToYaml(*recipe), "written.yaml", {});
  AGORA_FUZZ_CHECK(again.ok());
  AGORA_FUZZ_CHECK(agora::RecipeValues(*again) == agora::RecipeValues(*recipe));
  return 0;
}
