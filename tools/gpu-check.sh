#!/usr/bin/env bash
# On the GPU machine (no network; torch 2.11.0+cu130 in python3, nvcc, cmake, ninja): unpack the .deb files
# carried in .debs/ (see tools/gpu-debs.sh) into a private prefix, build build-gpu/ against that machine's
# torch, run every test with the GPU, and leave the logs in $OUT (or gpu-results/ when OUT is unset).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/tools/versions.env"
out="${OUT:-$root/gpu-results}"
mkdir -p "$out"
prefix=/tmp/agora-debs
ls "$root"/.debs/*.deb >/dev/null 2>&1 || { echo "gpu-check: no .debs/*.deb: run 'make gpu-debs' on a build machine and carry .debs"; exit 2; }
for deb in "$root"/.debs/*.deb; do dpkg -x "$deb" "$prefix"; done
libdir="$prefix/usr/lib/x86_64-linux-gnu"
export LD_LIBRARY_PATH="$libdir:${LD_LIBRARY_PATH:-}"

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())'
  nvcc --version | tail -1
} 2>&1 | tee "$out/machine.txt"

python="$(command -v python3)"
BUILD_DIR="$root/build-gpu" AGORA_PYTHON="$python" AGORA_CMAKE_ARGS="-DCMAKE_PREFIX_PATH=$prefix/usr \
  -Dabsl_DIR=$libdir/cmake/absl -DGTest_DIR=$libdir/cmake/GTest -Dnlohmann_json_DIR=$prefix/usr/share/cmake/nlohmann_json -Dyaml-cpp_DIR=$libdir/cmake/yaml-cpp \
  -DCMAKE_BUILD_RPATH=$libdir" \
  "$root/tools/configure.sh" 2>&1 | tee "$out/configure.log"
cmake --build "$root/build-gpu" -j "$(nproc)" 2>&1 | tee "$out/build.log" | tail -5
status=${PIPESTATUS[0]}
if [[ $status -ne 0 ]]; then echo "gpu-check: build failed (see build.log)"; exit "$status"; fi
readelf -d "$root/build-gpu/agora" | grep -E 'NEEDED' > "$out/needed.txt"
cd "$root/build-gpu" && ctest --output-on-failure -j 4 2>&1 | tee "$out/ctest.log" | tail -40
status=${PIPESTATUS[0]}

# Attention kernels (issue 7): compute-sanitizer on a small case, then the benchmark sweep (JSON in $out).
"$root/tools/gpu-check-attention.sh" "$root/build-gpu" "$out" || status=1

# The loss kernels under compute-sanitizer (out-of-bounds accesses; shared-memory races in the row reductions).
if sanitizer="$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)"; then
  for tool in memcheck racecheck; do
    "$sanitizer" --tool "$tool" --error-exitcode 1 "$root/build-gpu/tests/loss_test" --gtest_filter='*Gpu*' \
      > "$out/loss_$tool.log" 2>&1 && echo "loss kernels: $tool clean" || echo "loss kernels: $tool FAILED (loss_$tool.log)"
  done
else
  echo "loss kernels: no compute-sanitizer on this machine; memcheck and racecheck not run"
fi

# Benchmarks (one GPU, run one after another). Results go to $out; commit the JSON under benchmarks/results/.
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
"$root/build-gpu/benchmarks/linear_cross_entropy_bench" --commit "$commit" --json "$out/linear_cross_entropy.json" 2>&1 |
  tee "$out/linear_cross_entropy_bench.txt"
exit "$status"
