#!/usr/bin/env bash
# soak.sh BUILD_DIR SECONDS: `agora train` of the tiny recipe on the CPU for SECONDS (the epochs never run out;
# evaluation, checkpoints with rotation, TensorBoard and metrics all keep happening), its resident memory
# (VmRSS) sampled every 10 s. After a warm-up of a tenth of the time (at least 60 s) the memory must not grow:
# the run fails when the end exceeds the warm-up figure by more than 5 %. Writes BUILD_DIR/soak/soak.json and
# the samples (soak/rss.tsv); prints start (after warm-up), end and max.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(cd "$1" && pwd)" seconds="$2"
out="$build/soak"
rm -rf "$out" && mkdir -p "$out"
warmup=$((seconds / 10 > 60 ? seconds / 10 : 60))

cd "$root"
OMP_NUM_THREADS=1 "$build/agora" train --config recipes/tiny_demo.yaml output_dir="$out/run" device=cpu \
  training.epochs=1000000 eval.every_steps=100 checkpoint.every_steps=200 checkpoint.keep_last=2 \
  logging.log_every_steps=20 >"$out/train.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
echo -e "seconds\trss_kib" >"$out/rss.tsv"
start=$(date +%s)
while (($(date +%s) - start < seconds)); do
  rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
  [[ -z "$rss" ]] && { echo "soak: agora train ended early:"; tail -n 20 "$out/train.log"; exit 1; }
  echo -e "$(($(date +%s) - start))\t$rss" >>"$out/rss.tsv"
  sleep 10
done
kill -TERM "$pid" && wait "$pid" || true
trap - EXIT

steps="$(grep -c '"step"' "$out/run/metrics.jsonl" || true)"
python3 - "$out" "$warmup" "$seconds" "$steps" <<'PY'
import json, sys
out, warmup, seconds, records = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = [tuple(map(int, l.split("\t"))) for l in open(f"{out}/rss.tsv").read().splitlines()[1:]]
after = [r for t, r in rows if t >= warmup]
start, end, peak = after[0], after[-1], max(r for _, r in rows)
growth = (end - start) / start
report = {"seconds": seconds, "warmup_seconds": warmup, "samples": len(rows), "metrics_records": records,
          "rss_kib_after_warmup": start, "rss_kib_end": end, "rss_kib_max": peak, "growth_after_warmup": growth}
json.dump(report, open(f"{out}/soak.json", "w"), indent=1)
print(f"soak: {seconds} s, {records} metrics records; resident memory after {warmup} s warm-up {start / 1024:.1f} MiB, "
      f"end {end / 1024:.1f} MiB, max {peak / 1024:.1f} MiB, growth {100 * growth:+.2f} %")
sys.exit(0 if growth <= 0.05 else f"soak: resident memory grew {100 * growth:.1f} % after warm-up (limit 5 %)")
PY
