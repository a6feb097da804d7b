"""Exact resume, crash safety and preemption of `agora train`, as processes: exact resume, kill -9 during a
save, SIGTERM.

Usage: python check_train_resume.py AGORA_BINARY SOURCE_DIR WORK_DIR {exact|kill9|sigterm} [key=value ...]

  exact    2N steps straight vs N steps (training.stop_after_steps), process exit, resume=auto, N more steps:
           the loss of every step is identical bit for bit, and so are the final weights and optimizer state.
           For LoRA runs also: a new run with lora.init_from=<the final checkpoint> (a PEFT adapter folder) starts
           from those adapters: its validation loss before training equals the final one of the run it came from.
  kill9    the process SIGKILLs itself in the middle of writing a checkpoint (weights written, optimizer and
           state not; AGORA_TEST_KILL_DURING_SAVE): the previous checkpoint is untouched and loadable (agora
           generate runs on it), resume=auto picks it, and the finished run matches the straight run exactly.
  sigterm  SIGTERM while training: the process saves a checkpoint and exits 0; resume=auto continues from it and
           the finished run matches the straight run exactly.
All runs train the embedded tiny model on the bundled demo data (recipes/tiny_demo.yaml) on the CPU, with the
extra recipe overrides given after the check's name (e.g. lora.rank=0 for full fine-tuning). A LoRA checkpoint
holds adapter_model.safetensors where a full one holds model.safetensors.
"""

import json
import os
import signal
import subprocess
import sys
import time

from train_runs import log_text, read, run_dir, run_expecting

STEPS = 24
EXTRA = []  # recipe overrides from the command line, for every run


def command(agora, source, out, *overrides):
    return [agora, "train", f"--config={source}/recipes/tiny_demo.yaml", f"output_dir={out}", "device=cpu",
            f"training.max_steps={STEPS}", "eval.every_steps=10", "checkpoint.every_steps=4", "checkpoint.keep_last=3",
            "logging.tensorboard=false", "logging.log_every_steps=1", *EXTRA, *overrides]


def train(agora, source, out, *overrides, env=None, expect_rc=0):
    return run_expecting(command(agora, source, out, *overrides), source, env, 300, expect_rc)


def losses(out):
    """Step -> training loss, from metrics.jsonl (which a resumed run rewrites up to its checkpoint)."""
    with open(os.path.join(out, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    train_records = [r for r in records if r["kind"] == "train"]
    steps = [r["step"] for r in train_records]
    if steps != list(range(1, len(steps) + 1)):
        sys.exit(f"{out}/metrics.jsonl: train steps are {steps}, expected 1..{len(steps)} once each")
    return {r["step"]: r["loss"] for r in train_records}


def checkpoints(out):
    return sorted(os.listdir(os.path.join(out, "checkpoints")))


def weights_file(out):
    lora = any(f.startswith("adapter_") for f in os.listdir(os.path.join(out, "checkpoints", checkpoints(out)[-1])))
    return "adapter_model.safetensors" if lora else "model.safetensors"


def expect_same_run(reference, resumed):
    a, b = losses(reference), losses(resumed)
    if a != b:
        diff = [(s, a.get(s), b.get(s)) for s in sorted(set(a) | set(b)) if a.get(s) != b.get(s)]
        sys.exit(f"loss sequences differ (step, straight, resumed): {diff[:10]}")
    final = f"checkpoints/step_{STEPS:07d}"
    for name in (weights_file(resumed), "optimizer.safetensors"):
        if read(os.path.join(reference, final, name)) != read(os.path.join(resumed, final, name)):
            sys.exit(f"{final}/{name} differs between the straight and the resumed run")
    print(f"{len(a)} step losses identical bit for bit; final model and optimizer files identical")


def expect_in_log(out, text):
    if text not in log_text(out):
        sys.exit(f"{out}/log.txt lacks {text!r}:\n{log_text(out)}")


def eval_losses(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if r["kind"] == "eval"}


def check_init_from(agora, source, work, finished):
    out = run_dir(work, "init_from")
    adapter = os.path.join(finished, "checkpoints", f"step_{STEPS:07d}")
    train(agora, source, out, f"lora.init_from={adapter}", "training.max_steps=1")
    expect_in_log(out, f"LoRA adapters from {adapter}")
    before, after = eval_losses(out)[0], eval_losses(finished)[STEPS]
    if before != after:
        sys.exit(f"lora.init_from: validation loss {before} before training, expected {after} (the adapter's run)")
    print(f"lora.init_from: the new run starts at the adapter's validation loss {after} exactly")


def check_exact(agora, source, work, straight):
    out = run_dir(work, "exact")
    train(agora, source, out, f"training.stop_after_steps={STEPS // 2}")
    if checkpoints(out)[-1] != f"step_{STEPS // 2:07d}" or len(losses(out)) != STEPS // 2:
        sys.exit(f"the first half should stop at step {STEPS // 2} with a checkpoint: {checkpoints(out)}")
    train(agora, source, out, "resume=auto")
    expect_in_log(out, f"resumed from {out}/checkpoints/step_{STEPS // 2:07d} at step {STEPS // 2}")
    expect_same_run(straight, out)
    if weights_file(out) == "adapter_model.safetensors":
        check_init_from(agora, source, work, straight)


def check_kill9(agora, source, work, straight):
    out = run_dir(work, "kill9")
    env = dict(os.environ, AGORA_TEST_KILL_DURING_SAVE="8")
    train(agora, source, out, env=env, expect_rc=-signal.SIGKILL)
    found = checkpoints(out)
    if found != ["step_0000004", "step_0000008.tmp"]:
        sys.exit(f"after the kill expected step_0000004 and a partial step_0000008.tmp, found {found}")
    partial = os.listdir(os.path.join(out, "checkpoints", "step_0000008.tmp"))
    if not any(f.endswith(".safetensors") for f in partial) or "trainer_state.json" in partial:
        sys.exit(f"the kill should come after the weights and before the state; the partial folder holds {partial}")
    # The previous checkpoint is loadable: a complete model folder, or an adapter for the base model.
    previous = os.path.join(out, "checkpoints", "step_0000004")
    model = ["--model", previous] if weights_file(out) == "model.safetensors" else \
        ["--model", os.path.join(source, "assets", "tiny-llama"), "--adapter", previous]
    gen = subprocess.run([agora, "generate", *model, "--prompt", "Hello", "--max-new-tokens", "4"],
                         capture_output=True, text=True, timeout=120)
    if gen.returncode != 0:
        sys.exit(f"agora generate on the surviving checkpoint failed:\n{gen.stderr}")
    train(agora, source, out, "resume=auto")
    expect_in_log(out, f"resumed from {out}/checkpoints/step_0000004 at step 4")
    if any(name.endswith(".tmp") for name in checkpoints(out)):
        sys.exit(f"the stale partial checkpoint was not cleaned up: {checkpoints(out)}")
    expect_same_run(straight, out)


def check_sigterm(agora, source, work, straight):
    out = run_dir(work, "sigterm")
    # Many steps so that the signal lands mid-run; the schedule length (max_steps) is that of the straight run.
    # No periodic checkpoint: the one found afterwards can only be the preemption's.
    proc = subprocess.Popen(command(agora, source, out, "training.max_steps=100000", "checkpoint.every_steps=0"), cwd=source,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = os.path.join(out, "metrics.jsonl")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(metrics) and sum(1 for _ in open(metrics)) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    if proc.returncode != 0:
        sys.exit(f"after SIGTERM agora train should save and exit 0, got {proc.returncode}\n{stderr}")
    expect_in_log(out, "received SIGTERM")
    expect_in_log(out, "checkpoint (preempted)")
    last = checkpoints(out)[-1]
    step = int(last.split("_")[1])
    if step != len(losses(out)):
        sys.exit(f"the preemption checkpoint {last} should hold the last finished step {len(losses(out))}")
    print(f"SIGTERM after step {step}: checkpoint {last} written, exit 0")
    # Resume with the straight run's max_steps is the same run only if the schedule was the same: it was not
    # (100000 steps), so resume into the long schedule and compare with a straight long run cut at the same step.
    train(agora, source, out, "training.max_steps=100000", f"training.stop_after_steps={step + 4}", "resume=auto")
    expect_in_log(out, f"resumed from {out}/checkpoints/{last} at step {step}")
    reference = run_dir(work, "sigterm_reference")
    train(agora, source, reference, "training.max_steps=100000", f"training.stop_after_steps={step + 4}")
    if losses(out) != losses(reference):
        sys.exit("the run resumed after SIGTERM differs from the uninterrupted run")
    final = f"checkpoints/step_{step + 4:07d}/{weights_file(out)}"
    if read(os.path.join(out, final)) != read(os.path.join(reference, final)):
        sys.exit(f"{final} differs between the preempted and the uninterrupted run")
    print(f"resumed from step {step} to {step + 4}: losses and weights identical to the uninterrupted run")


def main():
    agora, source, work, which = sys.argv[1:5]
    EXTRA.extend(sys.argv[5:])
    os.makedirs(work, exist_ok=True)
    checks = {"exact": check_exact, "kill9": check_kill9, "sigterm": check_sigterm}
    straight = None
    if which != "sigterm":
        straight = run_dir(work, f"straight_{which}")
        train(agora, source, straight)
    checks[which](agora, source, work, straight)


if __name__ == "__main__":
    main()
