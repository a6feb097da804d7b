#!/usr/bin/env bash
# Configures build/ with CMake + Ninja + ccache against the venv's LibTorch. Skips when already configured:
# CMake re-runs itself from the build when a CMakeLists.txt changes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/tools/versions.env"
build="${BUILD_DIR:-$root/build}"
[[ -f "$build/build.ninja" ]] && exit 0

nvcc="${CUDACXX:-}"
[[ -z "$nvcc" ]] && nvcc="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_CUDA_COMPILER="$nvcc" \
  -DAGORA_PYTHON="${AGORA_PYTHON:-$AGORA_VENV/bin/python}" \
  -DAGORA_TORCH_VERSION="$TORCH_VERSION" \
  "${launcher[@]}" ${AGORA_CMAKE_ARGS:-}
