#include "util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace agora {
namespace {

absl::Status ErrnoError(absl::string_view what, const std::filesystem::path& path, int err) {
  return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(what, " ", path.string(), ": ", std::strerror(err)));
}

// A unique name per call: the pid separates processes, the counter separates threads and repeated calls,
// so two writers never share (and truncate) one temporary file.
std::filesystem::path TempPathFor(const std::filesystem::path& path) {
  static std::atomic<uint64_t> counter{0};
  return std::filesystem::path(absl::StrCat(path.string(), ".tmp.", ::getpid(), ".", counter.fetch_add(1)));
}

std::filesystem::path DirectoryOf(const std::filesystem::path& path) {
  std::filesystem::path dir = path.parent_path();
  return dir.empty() ? std::filesystem::path(".") : dir;
}

// Owns the temporary file until Commit(): destroying it uncommitted closes and deletes the file, which is
// what every early return in WriteFileAtomically relies on.
class TempFile {
 public:
  TempFile(std::filesystem::path path, int fd) : path_(std::move(path)), fd_(fd) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }

  int fd() const { return fd_; }
  const std::filesystem::path& path() const { return path_; }

  // close() can report write-back errors (e.g. on NFS), so it is checked rather than left to the destructor.
  absl::Status Close() {
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) return ErrnoError("cannot close", path_, errno);
    return absl::OkStatus();
  }

  void Commit() { committed_ = true; }

 private:
  std::filesystem::path path_;
  int fd_;
  bool committed_ = false;
};

}  // namespace

absl::Status SyncDirectory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open directory", dir, errno);
  const int sync_result = ::fsync(fd);
  const int sync_errno = errno;
  ::close(fd);
  if (sync_result != 0) return ErrnoError("cannot fsync directory", dir, sync_errno);
  return absl::OkStatus();
}

absl::Status WriteFully(int fd, absl::Span<const std::byte> bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat("write failed: ", std::strerror(err)));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status WriteFully(int fd, std::string_view bytes) {
  return WriteFully(fd, absl::MakeConstSpan(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()));
}

absl::Status WriteFileAtomically(const std::filesystem::path& path,
                                 const std::function<absl::Status(int fd)>& write_contents) {
  std::filesystem::path temp_path = TempPathFor(path);
  // 0666 so the umask decides the final permissions, as for any ordinarily created file.
  const int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return ErrnoError("cannot create temporary file", temp_path, errno);
  TempFile temp(std::move(temp_path), fd);

  if (absl::Status status = write_contents(temp.fd()); !status.ok()) {
    return absl::Status(status.code(), absl::StrCat("writing ", path.string(), ": ", status.message()));
  }
  if (::fsync(temp.fd()) != 0) return ErrnoError("cannot fsync", temp.path(), errno);
  AGORA_RETURN_IF_ERROR(temp.Close());
  if (::rename(temp.path().c_str(), path.c_str()) != 0) {
    const int err = errno;  // before StrCat, whose allocation may clobber errno
    return ErrnoError(absl::StrCat("cannot rename ", temp.path().string(), " to"), path, err);
  }
  temp.Commit();
  return SyncDirectory(DirectoryOf(path));
}

absl::Status WriteStringAtomically(const std::filesystem::path& path, std::string_view contents) {
  return WriteFileAtomically(path, [contents](int fd) { return WriteFully(fd, contents); });
}

}  // namespace agora
