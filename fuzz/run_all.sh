#!/usr/bin/env bash
# run_all.sh BUILD_DIR RUNS [TARGET ...]: fuzz every target (or those named) for RUNS executions each, one after
# another, and write the executions, corpus size, time and outcome of each to BUILD_DIR/fuzz_report.md.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$1" runs="$2"
shift 2
targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in "$here"/*_fuzzer.cpp; do targets+=("$(basename "$f" _fuzzer.cpp)"); done
fi
report="$build/fuzz_report.md"
{
  echo "| target | executions | corpus | seconds | outcome |"
  echo "|---|---:|---:|---:|---|"
} >"$report"
failed=0
for t in "${targets[@]}"; do
  start=$(date +%s)
  line="$("$here/run_fuzzer.sh" "runs=$runs" "$build/fuzz/${t}_fuzzer" "$here/corpus/$t" "$here/regressions/$t" | head -n 1)"
  rc=${PIPESTATUS[0]}
  seconds=$(($(date +%s) - start))
  executions="$(grep -o '[0-9?]* executions' <<<"$line" | cut -d' ' -f1)"
  corpus="$(grep -o 'corpus [0-9]*' <<<"$line" | cut -d' ' -f2)"
  outcome=$([[ $rc == 0 ]] && echo "clean" || echo "FAILED (see $build/fuzz/findings/$t/)")
  ((rc != 0)) && failed=1
  echo "| $t | $executions | $corpus | $seconds | $outcome |" | tee -a "$report"
done
echo "report: $report"
exit "$failed"
