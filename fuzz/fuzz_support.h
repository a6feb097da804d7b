// What the fuzz targets share: the input as text, a scratch file for parsers that take a path, and a property
// check that aborts (libFuzzer then saves the input as a crash).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace agora::fuzz {

inline std::string_view AsText(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// The input written to one file per process (overwritten by each run), in /dev/shm when there is one: the
// readers that take a path (datasets, sandbox logs, eval tasks) are fuzzed through the same code users run.
inline std::filesystem::path WriteScratchFile(std::string_view bytes, std::string_view suffix) {
  static const std::filesystem::path dir = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
  const std::filesystem::path path = dir / ("agora-fuzz-" + std::to_string(::getpid()) + std::string(suffix));
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

// A property of the parser's output that must hold for every accepted input (a round trip, a bound).
#define AGORA_FUZZ_CHECK(condition)                                                          \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

}  // namespace agora::fuzz
