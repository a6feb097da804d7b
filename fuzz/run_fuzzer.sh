#!/usr/bin/env bash
# run_fuzzer.sh MODE FUZZER SEEDS REGRESSIONS: one libFuzzer target, under ASan + UBSan.
#   replay      every seed and every kept regression input once (a failure is a bug that came back)
#   seconds=N   fuzz for N seconds        runs=N   fuzz for N executions
# Fuzzing grows a working corpus next to the binary (corpus/<target>/, kept between runs, so `make fuzz` goes
# on where the last run stopped) and writes what fails to findings/<target>/. Prints the executions done.
set -euo pipefail
mode="$1" fuzzer="$2" seeds="$3" regressions="$4"
target="$(basename "$fuzzer" _fuzzer)"
inputs=("$seeds")
[[ -d "$regressions" ]] && inputs+=("$regressions")
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
if [[ "$mode" == replay ]]; then
  exec "$fuzzer" -runs=0 "${inputs[@]}"
fi
work="$(dirname "$fuzzer")/corpus/$target"
findings="$(dirname "$fuzzer")/findings/$target"
mkdir -p "$work" "$findings"
case "$mode" in
  seconds=*) limit=(-max_total_time="${mode#seconds=}") ;;
  runs=*) limit=(-runs="${mode#runs=}") ;;
  *) echo "run_fuzzer.sh: unknown mode '$mode'" >&2; exit 2 ;;
esac
# -timeout: one input taking over 10 s is a finding (a hang); -rss_limit_mb: so is growing past 2 GB.
log="$findings/last_run.log"
set +e
"$fuzzer" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
  -artifact_prefix="$findings/" "$work" "${inputs[@]}" >"$log" 2>&1
rc=$?
set -e
executions="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
echo "$target: $executions executions, corpus $(ls "$work" | wc -l) inputs, exit $rc"
if ((rc != 0)); then
  tail -n 60 "$log"
  echo "the failing input is in $findings/; once fixed, copy it to fuzz/regressions/$target/" >&2
fi
exit "$rc"
