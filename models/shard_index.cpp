#include "models/shard_index.h"

#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace agora {

absl::StatusOr<std::vector<std::string>> ParseShardIndex(std::string_view json_text, const std::string& origin) {
  const nlohmann::json index = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  const auto weight_map = index.is_object() ? index.find("weight_map") : index.end();
  if (!index.is_object() || weight_map == index.end() || !weight_map->is_object())
    return absl::InvalidArgumentError(absl::StrCat(origin, ": expected a JSON object with a \"weight_map\" object"));
  std::set<std::string> shard_names;
  for (const auto& [tensor, shard] : weight_map->items()) {
    if (!shard.is_string())
      return absl::InvalidArgumentError(absl::StrCat(origin, ": weight_map entry '", tensor, "' is not a file name"));
    const std::string& name = shard.get_ref<const std::string&>();
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == ".." ||
        name.find('\0') != std::string::npos)
      return absl::InvalidArgumentError(absl::StrCat(origin, ": weight_map entry '", tensor, "' names '", name,
                                                     "', which is not a file in the same folder"));
    shard_names.insert(name);
  }
  if (shard_names.empty()) return absl::InvalidArgumentError(absl::StrCat(origin, ": weight_map is empty"));
  return std::vector<std::string>(shard_names.begin(), shard_names.end());
}

}  // namespace agora
