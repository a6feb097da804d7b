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
# ccache with paths taken relative to the checkout (base_dir) and without the build folder in the hash of -g objects
# (hash_dir off): a fresh clone anywhere reuses what another checkout compiled. (Its debug info then names the first
# checkout's folder.)
launcher=()
if command -v ccache >/dev/null; then
  ccache="env;CCACHE_BASEDIR=$root;CCACHE_NOHASHDIR=true;ccache"
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER="$ccache" -DCMAKE_CUDA_COMPILER_LAUNCHER="$ccache")
fi
cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_CUDA_COMPILER="$nvcc" \
  -DAGORA_PYTHON="${AGORA_PYTHON:-$AGORA_VENV/bin/python}" \
  -DAGORA_TORCH_VERSION="$TORCH_VERSION" \
  "${launcher[@]}" ${AGORA_CMAKE_ARGS:-}
