#include "util/read_file.h"

#include <cerrno>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"

namespace agora {

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (file == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", path.string()));
  std::string bytes;
  char buffer[1 << 16];
  size_t read;
  while ((read = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) bytes.append(buffer, read);
  if (std::ferror(file.get())) return absl::ErrnoToStatus(errno, absl::StrCat("cannot read ", path.string()));
  return bytes;
}

}  // namespace agora
