// Reads a whole (small) file: configs, indexes, tokenizer models. Large weights are memory-mapped instead.
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"

namespace agora {

// The file's bytes; errors carry the errno-derived code (NotFound, PermissionDenied, ...) and name the path.
absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path);

}  // namespace agora
