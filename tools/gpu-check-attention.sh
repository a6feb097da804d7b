#!/usr/bin/env bash
# The attention kernels' GPU checks (issue 7), run by tools/gpu-check.sh after the test suite, from a built
# build-gpu/: compute-sanitizer memcheck, racecheck and synccheck on a small packed case, then the benchmark sweep.
# Usage: tools/gpu-check-attention.sh BUILD_DIR OUT_DIR. Leaves sanitizer logs, the benchmark table and its JSON
# in OUT_DIR; the JSON is what gets committed as benchmarks/results/attention_<gpu>.json. A short device budget can
# shrink the sweep: AGORA_ATTENTION_BENCH_ITERS (default 10 timed runs), AGORA_ATTENTION_BENCH_MAX_SEQ (16384).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$1"
out="$2"
status=0
sanitizer="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
[[ -x "$sanitizer" ]] || echo "*** attention: compute-sanitizer not found: memcheck/racecheck/synccheck NOT RUN ***"
# Without torch's caching allocator every tensor is its own cudaMalloc, so memcheck sees exact bounds.
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
for tool in memcheck racecheck synccheck; do
  [[ -x "$sanitizer" ]] || break
  "$sanitizer" --tool "$tool" --error-exitcode 3 "$build/tests/flash_attention_test" \
    --gtest_filter='FlashAttentionCuda.SmallPackedCases' > "$out/attention_sanitizer_$tool.log" 2>&1
  rc=$?
  echo "attention: compute-sanitizer $tool exit $rc ($(tail -1 "$out/attention_sanitizer_$tool.log"))"
  [[ $rc -ne 0 ]] && status=$rc
done
unset PYTORCH_NO_CUDA_MEMORY_CACHING

commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
"$build/benchmarks/attention_bench" --out "$out/attention_bench.json" --commit "$commit" \
  --iters "${AGORA_ATTENTION_BENCH_ITERS:-10}" --max-seq "${AGORA_ATTENTION_BENCH_MAX_SEQ:-16384}" 2>&1 | tee "$out/attention_bench.txt" | tail -3
[[ ${PIPESTATUS[0]} -ne 0 ]] && status=1
exit "$status"
