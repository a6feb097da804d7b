// Crash-safe file replacement: readers see either the old file or the complete new one, never a torn write.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace agora {

// Writes every byte to `fd`, retrying short writes and EINTR. Errors carry strerror but no path: inside
// WriteFileAtomically's callback the path is added by WriteFileAtomically.
absl::Status WriteFully(int fd, absl::Span<const std::byte> bytes);
absl::Status WriteFully(int fd, std::string_view bytes);

// Creates a temporary file next to `path`, lets `write_contents` fill it through the given descriptor, fsyncs
// it, renames it over `path` and fsyncs the directory so the rename itself survives a crash. On any error
// (including one returned by `write_contents`, which is prefixed with `path`) the temporary file is removed
// and an existing `path` is left untouched.
absl::Status WriteFileAtomically(const std::filesystem::path& path,
                                 const std::function<absl::Status(int fd)>& write_contents);

// fsyncs a directory, so that entries created, renamed or removed in it survive a crash.
absl::Status SyncDirectory(const std::filesystem::path& dir);

absl::Status WriteStringAtomically(const std::filesystem::path& path, std::string_view contents);

}  // namespace agora
