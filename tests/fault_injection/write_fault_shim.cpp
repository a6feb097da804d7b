// An LD_PRELOAD shim that makes file system calls fail for one path, so tests can run `agora` into a full disk
// or a folder it may not write, without either:
//   AGORA_FAULT_PATH=<substring>   the files concerned: those whose path contains it
//   AGORA_FAULT=enospc             write()/pwrite() to such a file fail with ENOSPC (the disk is full)
//   AGORA_FAULT=eacces             open()/openat() creating or writing such a file fail with EACCES
// Anything else passes through to libc. (A test that runs as root cannot use chmod for the second.)
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

bool FaultIs(const char* kind) {
  const char* fault = std::getenv("AGORA_FAULT");
  const char* path = std::getenv("AGORA_FAULT_PATH");
  return fault != nullptr && path != nullptr && *path != '\0' && std::strcmp(fault, kind) == 0;
}

bool PathMatches(const char* path) { return path != nullptr && std::strstr(path, std::getenv("AGORA_FAULT_PATH")); }

bool FdMatches(int fd) {
  char link[64], target[4096];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) return false;
  target[n] = '\0';
  return PathMatches(target);
}

template <typename F>
F Real(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

bool Writes(int flags) { return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) != 0; }

// Whether a write to fd is to fail (errno set), and the same for an open of path with flags.
bool FailWrite(int fd) {
  if (!FaultIs("enospc") || !FdMatches(fd)) return false;
  errno = ENOSPC;
  return true;
}
bool FailOpen(const char* path, int flags) {
  if (!FaultIs("eacces") || !Writes(flags) || !PathMatches(path)) return false;
  errno = EACCES;
  return true;
}

}  // namespace

extern "C" {

ssize_t write(int fd, const void* buf, size_t count) {
  static const auto real = Real<ssize_t (*)(int, const void*, size_t)>("write");
  return FailWrite(fd) ? -1 : real(fd, buf, count);
}

ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  static const auto real = Real<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite");
  return FailWrite(fd) ? -1 : real(fd, buf, count, offset);
}

int open(const char* path, int flags, ...) {
  static const auto real = Real<int (*)(const char*, int, ...)>("open");
  va_list args;  // the mode, present when the file may be created
  va_start(args, flags);
  const mode_t mode = (flags & O_CREAT) ? va_arg(args, mode_t) : 0;
  va_end(args);
  return FailOpen(path, flags) ? -1 : real(path, flags, mode);
}

int openat(int dirfd, const char* path, int flags, ...) {
  static const auto real = Real<int (*)(int, const char*, int, ...)>("openat");
  va_list args;  // the mode, present when the file may be created
  va_start(args, flags);
  const mode_t mode = (flags & O_CREAT) ? va_arg(args, mode_t) : 0;
  va_end(args);
  return FailOpen(path, flags) ? -1 : real(dirfd, path, flags, mode);
}

}  // extern "C"
