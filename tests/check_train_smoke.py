"""A short `agora train` run learns: it ends with its final checkpoint and every evaluation's loss is below the
one before it, starting from the step-0 evaluation of the untrained model.

Usage: python check_train_smoke.py OUTPUT_DIR AGORA_BINARY train --config=... key=value ...
OUTPUT_DIR is removed first and passed to the run as output_dir; the run needs validation data and
eval.every_steps > 0, so that metrics.jsonl holds the evaluations.
"""

import json
import os
import shutil
import subprocess
import sys


def main():
    out, command = sys.argv[1], sys.argv[2:]
    shutil.rmtree(out, ignore_errors=True)
    result = subprocess.run(command + [f"output_dir={out}"], capture_output=True, text=True)
    print(result.stdout[-3000:], result.stderr[-3000:])
    assert result.returncode == 0, f"agora train failed: {result.returncode}"
    assert "checkpoint (final)" in result.stdout + result.stderr, "no final checkpoint was written"
    with open(os.path.join(out, "metrics.jsonl")) as f:
        evals = [r for r in map(json.loads, f) if r["kind"] == "eval"]
    print("eval loss by step:", ", ".join(f"{e['step']}: {e['loss']:.4f}" for e in evals))
    assert len(evals) >= 2 and evals[0]["step"] == 0, f"expected evaluations from step 0, got {evals}"
    for before, after in zip(evals, evals[1:]):
        assert after["loss"] < before["loss"], (
            f"eval loss did not fall from step {before['step']} ({before['loss']:.4f}) "
            f"to step {after['step']} ({after['loss']:.4f})")


if __name__ == "__main__":
    main()
