"""A few hundred steps of a comparison objective on the tiny model move what the objective is about.

Usage: python check_objective_training.py AGORA_BINARY SOURCE_DIR WORK_DIR {stable_alignment|dpo}

  stable_alignment  recipes/tiny_stable_alignment.yaml, evaluated on its own training groups: the NLL gap
                    between the lower-rated responses and the best-rated one (eval's nll_gap, per query) grows by
                    at least MIN_GAP_GAIN nats, and the penalty term falls.
  dpo               recipes/tiny_dpo.yaml, evaluated on its own training pairs: the implicit reward margin starts
                    at 0 (the policy is the reference: LoRA adapters start with B = 0) and ends above MIN_MARGIN,
                    with most pairs ranked right.
Evaluating on the training records checks what the objective optimises, not generalisation (a 0.19M-parameter
model and a few dozen records).
"""

import json
import os
import shutil
import subprocess
import sys

STEPS = 300
MIN_GAP_GAIN = 0.5   # nats per token
MIN_MARGIN = 1.0     # beta * log-ratio difference
MIN_ACCURACY = 0.75


def main():
    agora, source, work, objective = sys.argv[1:5]
    out = os.path.join(work, objective)
    shutil.rmtree(out, ignore_errors=True)
    recipe = {"stable_alignment": "tiny_stable_alignment", "dpo": "tiny_dpo"}[objective]
    with open(os.path.join(source, "recipes", f"{recipe}.yaml")) as f:
        train_path = next(line.split(":", 1)[1].strip() for line in f if line.strip().startswith("path: assets/data/seeds"))
    cmd = [agora, "train", f"--config={source}/recipes/{recipe}.yaml", f"output_dir={out}", "device=cpu",
           f"training.max_steps={STEPS}", f"eval.every_steps={STEPS}", "logging.tensorboard=false",
           f"data.validation.path={train_path}", "checkpoint.every_steps=0"]
    result = subprocess.run(cmd, cwd=source, capture_output=True, text=True)
    print(result.stdout[-3000:], result.stderr[-3000:])
    assert result.returncode == 0, f"agora train failed: {result.returncode}"
    with open(os.path.join(out, "metrics.jsonl")) as f:
        evals = [r for r in map(json.loads, f) if r["kind"] == "eval"]
    first, last = evals[0], evals[-1]
    assert first["step"] == 0 and last["step"] == STEPS, [e["step"] for e in evals]
    if objective == "stable_alignment":
        gain = last["nll_gap"] - first["nll_gap"]
        print(f"nll_gap {first['nll_gap']:.4f} -> {last['nll_gap']:.4f} (+{gain:.4f}); penalty "
              f"{first['penalty']:.4f} -> {last['penalty']:.4f}; ce_best {first['ce_best']:.4f} -> {last['ce_best']:.4f}")
        assert gain >= MIN_GAP_GAIN, f"the NLL gap grew by {gain:.4f} < {MIN_GAP_GAIN}"
        assert last["penalty"] < first["penalty"], "the ranking penalty did not fall"
        assert last["ce_best"] < first["ce_best"], "the best responses did not become more likely"
    else:
        print(f"reward_margin {first['reward_margin']:.4f} -> {last['reward_margin']:.4f}; reward_accuracy "
              f"{first['reward_accuracy']:.3f} -> {last['reward_accuracy']:.3f}; loss {first['loss']:.4f} -> {last['loss']:.4f}")
        assert abs(first["reward_margin"]) < 1e-6, "before training the policy is the reference: margin 0"
        assert abs(first["loss"] - 0.6931471805599453) < 1e-5, "before training the loss is log 2"
        assert last["reward_margin"] >= MIN_MARGIN, f"the reward margin reached {last['reward_margin']:.4f} < {MIN_MARGIN}"
        assert last["reward_accuracy"] >= MIN_ACCURACY, f"reward accuracy {last['reward_accuracy']:.3f}"
    print("OK")


if __name__ == "__main__":
    main()
