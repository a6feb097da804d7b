"""`agora train` under faults, as processes: kill loops, a rerun of a finished run, damaged checkpoints, a full
disk, and a resume with a changed recipe. Every run trains the embedded tiny model on the bundled demo data
(recipes/tiny_demo.yaml) on the CPU, with the extra overrides given after the check's name.

Usage: python check_hardening.py AGORA_BINARY SOURCE_DIR WORK_DIR CHECK [key=value ...]

  kill9_loop     KILLS times SIGKILL at a random moment (start-up, a step, a checkpoint save; fixed seed), each
                 followed by resume=auto; then the run finishes. Weights, optimizer state and every record of
                 metrics.jsonl (but its wall-clock fields) are identical bit for bit to an uninterrupted run.
  sigterm_loop   the same with SIGTERM (a preemption: the process saves a checkpoint and exits 0, or dies if the
                 signal comes before the handlers are installed).
  rerun_finished running a finished run again changes no file of its folder (metrics.jsonl keeps one final eval).
  damaged        the newest checkpoint's weights truncated, then (another run) one byte flipped: resume=auto says
                 which file is damaged, moves the checkpoint aside, resumes from the previous one and ends
                 identical to the uninterrupted run. Resuming when every checkpoint is damaged is refused.
  disk_full      the disk fills (LD_PRELOAD shim: ENOSPC) while a checkpoint is written, then the folder becomes
                 unwritable (EACCES): a clear error naming the file, the previous checkpoint intact, and the
                 resumed run identical to the uninterrupted one.
  recipe_change  a resume that changes what the checkpoints mean (lora.rank, seed, data.append_eos) is refused
                 naming the keys, and leaves recipe.yaml as it was; one that changes optimizer.lr is logged and
                 recipe.yaml then holds the new value.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

from train_runs import log_text, read, run_dir, run_expecting

STEPS = 60
KILLS = 20
EXTRA = []
WALL_CLOCK_FIELDS = ("time", "tokens_per_second")
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def command(agora, source, out, *overrides):
    return [agora, "train", f"--config={source}/recipes/tiny_demo.yaml", f"output_dir={out}", "device=cpu",
            f"training.max_steps={STEPS}", "eval.every_steps=10", "checkpoint.every_steps=2", "checkpoint.keep_last=2",
            "data.max_seq_len=64", "logging.tensorboard=false", "logging.log_every_steps=1", *EXTRA, *overrides]


def train(agora, source, out, *overrides, env=None, expect_rc=0):
    return run_expecting(command(agora, source, out, *overrides), source, env or ENV, 600, expect_rc)


def metrics(out):
    """metrics.jsonl's records without their wall-clock fields, in file order."""
    with open(os.path.join(out, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK_FIELDS} for r in records]


def final_checkpoint(out):
    return os.path.join(out, "checkpoints", f"step_{STEPS:07d}")


def newest_step(out):
    """The step of the newest complete checkpoint, 0 before the first."""
    folder = os.path.join(out, "checkpoints")
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return max([int(n[len("step_"):]) for n in names if n.startswith("step_") and n[len("step_"):].isdigit()],
               default=0)


def weight_files(checkpoint):
    return sorted(f for f in os.listdir(checkpoint) if f.endswith(".safetensors"))


def expect_same_run(reference, resumed, what):
    a, b = metrics(reference), metrics(resumed)
    if a != b:
        diff = [(i, x, y) for i, (x, y) in enumerate(zip(a, b)) if x != y][:3]
        sys.exit(f"{what}: metrics.jsonl differs ({len(a)} vs {len(b)} records); first differences: {diff}")
    ref, res = final_checkpoint(reference), final_checkpoint(resumed)
    for name in weight_files(ref):
        if read(os.path.join(ref, name)) != read(os.path.join(res, name)):
            sys.exit(f"{what}: {name} of the final checkpoint differs from the uninterrupted run's")
    print(f"{what}: {len(a)} metrics records, {', '.join(weight_files(ref))} identical bit for bit")


def expect_in(text, needle, what):
    if needle not in text:
        sys.exit(f"{what} lacks {needle!r}:\n{text[-3000:]}")


def straight_run(agora, source, work):
    out = run_dir(work, "straight")
    train(agora, source, out)
    return out


def kill_loop(agora, source, work, sig):
    start = time.monotonic()
    straight = straight_run(agora, source, work)
    whole = time.monotonic() - start
    start = time.monotonic()
    train(agora, source, straight, "resume=auto")  # a finished run: only the start-up (loading, checks)
    startup = time.monotonic() - start
    # Signals land during start-up, steps and saves alike, the run advancing by about half of 1/KILLS of its
    # steps each time on average. Should the machine speed up (the timings above were taken under another load)
    # and the run get ahead of half its steps' share, the signals come sooner: KILLS signals land before it ends.
    latest = startup + (whole - startup) / KILLS
    out = run_dir(work, f"loop_{signal.Signals(sig).name}")
    rng = random.Random(2026)
    landed, outcomes = 0, {}
    while landed < KILLS:
        proc = subprocess.Popen(command(agora, source, out, "resume=auto"), cwd=source, env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.02, latest))
        if proc.poll() is not None:  # finished before the signal: the loop needs a longer run
            sys.exit(f"the run finished after {landed} signals, before {KILLS}; raise STEPS\n{proc.stderr.read()}")
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
        if proc.returncode not in (0, -sig):
            sys.exit(f"after signal {sig} agora train exited {proc.returncode}\n{stderr}")
        landed += 1
        outcomes[proc.returncode] = outcomes.get(proc.returncode, 0) + 1
        if newest_step(out) > STEPS / 2 * landed / KILLS:
            latest = max(0.05, latest * 0.7)
    train(agora, source, out, "resume=auto")
    print(f"{landed} signals {signal.Signals(sig).name}, the last within {latest:.2f} s of its start (a whole run "
          f"{whole:.2f} s, start-up {startup:.2f} s), exit codes {outcomes}")
    expect_same_run(straight, out, f"{landed} x {signal.Signals(sig).name} + resume=auto")


def check_rerun_finished(agora, source, work):
    out = straight_run(agora, source, work)
    before = {os.path.relpath(os.path.join(d, f), out): read(os.path.join(d, f))
              for d, _, files in os.walk(out) for f in files if f != "log.txt"}
    proc = train(agora, source, out, "resume=auto")
    expect_in(proc.stderr + log_text(out), "already finished", "the rerun's log")
    after = {os.path.relpath(os.path.join(d, f), out): read(os.path.join(d, f))
             for d, _, files in os.walk(out) for f in files if f != "log.txt"}
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        sys.exit(f"running the finished run again changed {changed}")
    print(f"rerun of a finished run: {len(before)} files unchanged, {len(metrics(out))} metrics records")


def damage(path, how):
    data = bytearray(read(path))
    if how == "truncate":
        data = data[: len(data) - 100]
    else:
        data[len(data) // 2] ^= 0x01
    with open(path, "wb") as f:
        f.write(data)


def check_damaged(agora, source, work):
    straight = straight_run(agora, source, work)
    for how in ("truncate", "flip"):
        out = run_dir(work, f"damaged_{how}")
        train(agora, source, out, "training.stop_after_steps=8")
        newest = os.path.join(out, "checkpoints", "step_0000008")
        victim = os.path.join(newest, weight_files(newest)[0])
        damage(victim, how)
        proc = train(agora, source, out, "resume=auto")
        text = proc.stderr + log_text(out)
        expect_in(text, "skipped a damaged checkpoint", "the resumed run's log")
        expect_in(text, victim, "the resumed run's log")
        expect_in(text, "bytes" if how == "truncate" else "CRC-32C", "the resumed run's log")
        expect_in(text, f"resumed from {out}/checkpoints/step_0000006 at step 6", "the resumed run's log")
        if not os.path.isdir(newest + ".damaged"):
            sys.exit(f"the damaged checkpoint was not moved to {newest}.damaged")
        expect_same_run(straight, out, f"{how} newest checkpoint + resume=auto")
    # Every checkpoint damaged: refused, nothing moved.
    out = run_dir(work, "damaged_all")
    train(agora, source, out, "training.stop_after_steps=4")
    for step in (2, 4):
        ckpt = os.path.join(out, "checkpoints", f"step_{step:07d}")
        damage(os.path.join(ckpt, weight_files(ckpt)[0]), "truncate")
    proc = train(agora, source, out, "resume=auto", expect_rc=1)
    expect_in(proc.stderr, "every checkpoint under", "the refusal")
    if sorted(os.listdir(os.path.join(out, "checkpoints"))) != ["step_0000002", "step_0000004"]:
        sys.exit(f"a refused resume moved checkpoints: {os.listdir(os.path.join(out, 'checkpoints'))}")
    print("every checkpoint damaged: refused, checkpoints left in place")


def check_disk_full(agora, source, work, shim):
    straight = straight_run(agora, source, work)
    out = run_dir(work, "disk_full")
    for fault, needle in (("enospc", "No space left on device"), ("eacces", "Permission denied")):
        env = dict(ENV, LD_PRELOAD=shim, AGORA_FAULT=fault, AGORA_FAULT_PATH="step_0000008.tmp")
        proc = train(agora, source, out, "resume=auto", env=env, expect_rc=1)
        expect_in(proc.stderr, needle, f"the {fault} error")
        expect_in(proc.stderr, "step_0000008.tmp/", f"the {fault} error (naming the file)")
        found = sorted(os.listdir(os.path.join(out, "checkpoints")))
        if "step_0000006" not in found or "step_0000008" in found:
            sys.exit(f"after {fault} during step 8's save expected step_0000006 intact and no step_0000008: {found}")
        print(f"{fault} during a checkpoint save: {proc.stderr.strip().splitlines()[-1]}")
    train(agora, source, out, "resume=auto")
    expect_in(log_text(out), f"resumed from {out}/checkpoints/step_0000006 at step 6", "the resumed run's log")
    expect_same_run(straight, out, "disk full, then resume=auto")


def check_recipe_change(agora, source, work):
    out = run_dir(work, "recipe_change")
    train(agora, source, out, "training.stop_after_steps=4", "lora.rank=16")
    saved = read(os.path.join(out, "recipe.yaml"))
    for change, keys in ((["lora.rank=8"], ["lora.rank 16 -> 8"]),
                         (["seed=7", "data.append_eos=true"], ["seed", "data.append_eos"]),
                         (["lora.rank=0"], ["lora.rank 16 -> 0"])):
        proc = train(agora, source, out, "resume=auto", "lora.rank=16", *change, expect_rc=1)
        for key in keys:
            expect_in(proc.stderr, key, f"the refusal of {change}")
        if read(os.path.join(out, "recipe.yaml")) != saved:
            sys.exit(f"a refused resume ({change}) rewrote recipe.yaml")
        print(f"resume with {' '.join(change)}: refused: {proc.stderr.strip().splitlines()[-1][:160]}")
    train(agora, source, out, "resume=auto", "lora.rank=16", "optimizer.lr=0.0005", "training.stop_after_steps=6")
    logged = next((l for l in log_text(out).splitlines() if "resuming with a changed recipe:" in l), "")
    expect_in(logged, "optimizer.lr 0.01 -> 5e-04", "the allowed change's log line")
    expect_in(read(os.path.join(out, "recipe.yaml")).decode(), "lr: 5e-04", "recipe.yaml after the allowed change")
    print("resume with optimizer.lr=0.0005: logged, recipe.yaml holds the new value")


def main():
    agora, source, work, which = sys.argv[1:5]
    rest = sys.argv[5:]
    shim = None
    if which == "disk_full":
        shim, rest = rest[0], rest[1:]
    EXTRA.extend(rest)
    os.makedirs(work, exist_ok=True)
    checks = {
        "kill9_loop": lambda: kill_loop(agora, source, work, signal.SIGKILL),
        "sigterm_loop": lambda: kill_loop(agora, source, work, signal.SIGTERM),
        "rerun_finished": lambda: check_rerun_finished(agora, source, work),
        "damaged": lambda: check_damaged(agora, source, work),
        "disk_full": lambda: check_disk_full(agora, source, work, shim),
        "recipe_change": lambda: check_recipe_change(agora, source, work),
    }
    checks[which]()


if __name__ == "__main__":
    main()
