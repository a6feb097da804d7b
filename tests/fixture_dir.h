// Where a ctest fixture (an oracle script) wrote its files: torch-free, for every test binary.
#pragma once

#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

namespace agora::testing {

// The folder named by environment variable `variable`, which ctest sets. A missing variable is a broken test
// set-up, so it fails loudly rather than skipping.
inline std::filesystem::path FixtureDir(const char* variable) {
  const char* value = std::getenv(variable);
  if (value == nullptr || *value == '\0') {
    ADD_FAILURE() << variable << " is not set: run this test through ctest (it wires the oracle fixtures)";
    return {};
  }
  return value;
}

}  // namespace agora::testing
