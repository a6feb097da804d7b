#!/usr/bin/env bash
# soak.sh BUILD_DIR SECONDS [train|simulate]: one long CPU process on the tiny model for SECONDS, its resident memory
# (VmRSS) sampled every 10 s.
#   train     `agora train` of the tiny recipe, its epochs never running out: evaluation, checkpoints with
#             rotation, TensorBoard and metrics all keep happening.
#   simulate  `agora simulate`, the sandbox closed loop with endless rounds: each round a 3x3 society on the
#             engine (prefix cache, constrained ratings, the journal), a training run on what it made and the
#             eval tasks, all in the one process (rounds older than the last two are deleted as it goes).
# After a warm-up of a tenth of the time (at least 60 s) the memory must not grow: the run fails when the end
# exceeds the warm-up figure by more than 5 %. Writes BUILD_DIR/soak/soak.json and the samples (soak/rss.tsv);
# prints start (after warm-up), end and max.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(cd "$1" && pwd)" seconds="$2" what="${3:-train}"
out="$build/soak"
rm -rf "$out" && mkdir -p "$out"
warmup=$((seconds / 10 > 60 ? seconds / 10 : 60))

cd "$root"
case "$what" in
  train)
    OMP_NUM_THREADS=1 "$build/agora" train --config recipes/tiny_demo.yaml output_dir="$out/run" device=cpu \
      training.epochs=1000000 eval.every_steps=100 checkpoint.every_steps=200 checkpoint.keep_last=2 \
      logging.log_every_steps=20 >"$out/agora.log" 2>&1 & ;;
  simulate)
    OMP_NUM_THREADS=1 "$build/agora" simulate --config recipes/closed_loop_sandbox_tiny.yaml output_dir="$out/run" \
      device=cpu closed_loop.rounds=1000000 checkpoint.keep_last=1 >"$out/agora.log" 2>&1 & ;;
  *) echo "soak.sh: expected train or simulate, got '$what'" >&2; exit 2 ;;
esac
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
echo -e "seconds\trss_kib" >"$out/rss.tsv"
start=$(date +%s)
while (($(date +%s) - start < seconds)); do
  rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
  [[ -z "$rss" ]] && { echo "soak: agora $what ended early:"; tail -n 20 "$out/agora.log"; exit 1; }
  echo -e "$(($(date +%s) - start))\t$rss" >>"$out/rss.tsv"
  if [[ "$what" == simulate && -d "$out/run" ]]; then  # keep the last two rounds: the next starts from the last
    last="$(find "$out/run" -maxdepth 1 -name 'round_*' -printf '%f\n' | sed 's/round_//' | sort -n | tail -n 1)"
    for dir in "$out/run"/round_*; do
      k="${dir##*round_}"
      [[ -n "$last" ]] && ((k < last - 1)) && rm -rf "$dir"
    done
    echo "${last:-0}" >"$out/rounds"
  fi
  sleep 10
done
kill -TERM "$pid" && wait "$pid" || true
trap - EXIT

if [[ "$what" == train ]]; then
  done_units="$(grep -c '"step"' "$out/run/metrics.jsonl" || true) metrics records"
else
  done_units="$(cat "$out/rounds" 2>/dev/null || echo 0) closed-loop rounds"
fi
python3 - "$out" "$warmup" "$seconds" "$what" "$done_units" <<'PY'
import json, sys
out, warmup, seconds, what, done = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = [tuple(map(int, l.split("\t"))) for l in open(f"{out}/rss.tsv").read().splitlines()[1:]]
after = [r for t, r in rows if t >= warmup]
start, end, peak = after[0], after[-1], max(r for _, r in rows)
growth = (end - start) / start
report = {"command": what, "seconds": seconds, "warmup_seconds": warmup, "samples": len(rows), "done": done,
          "rss_kib_after_warmup": start, "rss_kib_end": end, "rss_kib_max": peak, "growth_after_warmup": growth}
json.dump(report, open(f"{out}/soak.json", "w"), indent=1)
print(f"soak ({what}): {seconds} s, {done}; resident memory after {warmup} s warm-up {start / 1024:.1f} MiB, "
      f"end {end / 1024:.1f} MiB, max {peak / 1024:.1f} MiB, growth {100 * growth:+.2f} %")
sys.exit(0 if growth <= 0.05 else f"soak: resident memory grew {100 * growth:.1f} % after warm-up (limit 5 %)")
PY
