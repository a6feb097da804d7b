"""Data parallelism of `agora train` with real processes on the CPU (Gloo), run by ctest (label "distributed").

Usage: python check_distributed.py AGORA_BINARY SOURCE_DIR WORK_DIR CHECK [key=value ...]

  same:W:A:LAUNCHER  W ranks with training.batch_size=R, A micro-batches per step, started by LAUNCHER (`agora`:
                     agora launch; `torchrun`: torchrun --no-python agora train) give the same loss at every step
                     and the same final weights (<= 1e-6 relative per tensor, fp32) as one process with batch_size=R*W: the
                     same global batches (the sampler's rank shards are slices of them). The ranks' shares of
                     trained tokens differ (their logs say so; the test asserts it), so this holds only because
                     the loss is normalised by the global token count.
  killed             3 ranks; rank 1 is SIGKILLed mid-training: ranks 0 and 2 exit non-zero with an error that
                     names the failed collective, within distributed.timeout_s (plus start-up slack), not hang.
  stopped            the same with SIGSTOP: rank 1 hangs without closing its sockets; the others give up after
                     distributed.timeout_s.
  absent             rank 0 of 2 starts alone: it exits non-zero after distributed.timeout_s with an error that
                     says it was waiting for the other ranks.
  resize             a 2-rank run's checkpoint, resumed by 1 process: a clear error naming both world sizes.
  nccl1              on a GPU machine: one rank over NCCL trains (exit code 77, reported skipped, without a GPU).
  sigterm            SIGTERM to `agora launch --nproc 2`: it reaches both ranks, which agree to stop after the
                     same step; rank 0 writes the checkpoint, both exit 0; 2 ranks resume from it.
The tiny embedded model trains on the bundled demo data (recipes/tiny_demo.yaml); extra key=value arguments
(e.g. lora.rank=0) apply to every run.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
from safetensors.numpy import load_file

R = 2          # rows per micro-batch on each rank
STEPS = 6
EXTRA = []


def run_dir(work, name):
    path = os.path.join(work, name)
    shutil.rmtree(path, ignore_errors=True)
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_args(source, out, *overrides):
    # Small buckets: the tiny model's gradients then span many buckets, as a 7B model's do at 25 MB.
    # optimizer.lr=1e-3 rather than the demo's 1e-2: the Adam amplification described in relative() grows with
    # lr (at 1e-2 the LoRA B matrices, which start at zero, differ by ~1e-6 relative after 6 steps).
    return ["train", f"--config={source}/recipes/tiny_demo.yaml", f"output_dir={out}", "device=cpu",
            f"training.max_steps={STEPS}", "eval.every_steps=0", "checkpoint.every_steps=0",
            "logging.tensorboard=false", "logging.log_every_steps=1", "lora.dropout=0", "data.max_seq_len=128",
            "distributed.bucket_mb=0.02", "distributed.timeout_s=60", "optimizer.lr=1e-3", *EXTRA, *overrides]


def run(cmd, source, env=None, timeout=600):
    proc = subprocess.run(cmd, cwd=source, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)}\nexited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def losses(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [r["loss"] for r in map(json.loads, f) if r["kind"] == "train"]


def final_weights(out):
    folder = os.path.join(out, "checkpoints", f"step_{STEPS:07d}")
    name = "adapter_model.safetensors" if os.path.exists(os.path.join(folder, "adapter_model.safetensors")) \
        else "model.safetensors"
    return name, load_file(os.path.join(folder, name))


def relative(a, b):
    """||a - b|| / ||b|| over a whole tensor. Not element-wise: Adam divides every gradient element by its own
    running magnitude, so an element whose gradient nearly cancels (a sum of large terms of both signs) turns the
    fp32 summation-order difference between one process and W ranks (~1e-7 of the gradient) into a visibly
    different update of that one element; any change of summation order, a different thread count included,
    does the same. The norm measures the tensor, and the largest element difference is printed beside it."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def largest_difference(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def rank_denominators(out, world):
    """Each rank's share of the first step's denominator, from its log (rank 0: log.txt)."""
    shares = []
    for rank in range(world):
        path = os.path.join(out, "log.txt" if rank == 0 else f"logs/rank_{rank}.txt")
        with open(path) as f:
            m = re.search(r"first step on this rank: denominator (\d+) of (\d+)", f.read())
        if not m:
            sys.exit(f"{path} does not report the rank's first-step denominator")
        shares.append((int(m.group(1)), int(m.group(2))))
    return shares


def check_same(agora, source, work, world, accum, launcher):
    accum_args = [f"training.gradient_accumulation_steps={accum}"]
    one = run_dir(work, f"one_w{world}_a{accum}")
    run([agora, *train_args(source, one, f"training.batch_size={R * world}", *accum_args)], source)
    many = run_dir(work, f"dp_w{world}_a{accum}_{launcher}")
    ranks_args = train_args(source, many, f"training.batch_size={R}", *accum_args)
    if launcher == "agora":
        cmd = [agora, "launch", f"--nproc={world}", *ranks_args]
    else:  # torchrun from the venv that runs this script; --no-python runs the binary itself
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={world}",
               f"--master-port={free_port()}", "--no-python", agora, *ranks_args]
    run(cmd, source)

    shares = rank_denominators(many, world)
    total = shares[0][1]
    if sum(s for s, _ in shares) != total or len({s for s, _ in shares}) < 2:
        sys.exit(f"expected uneven per-rank denominators summing to the global one, got {shares}")
    a, b = losses(many), losses(one)
    if len(a) != STEPS or len(b) != STEPS:
        sys.exit(f"expected {STEPS} logged steps, got {len(a)} (data parallel) and {len(b)} (one process)")
    worst_loss = max(abs(x - y) / abs(y) for x, y in zip(a, b))
    name, wa = final_weights(many)
    _, wb = final_weights(one)
    if sorted(wa) != sorted(wb):
        sys.exit(f"{name}: different tensors in the two runs")
    worst_weight, where = max((relative(wa[k], wb[k]), k) for k in wb)
    worst_element = max(largest_difference(wa[k], wb[k]) for k in wb)
    print(f"{world} ranks ({launcher}), accumulation {accum}: per-rank first-step denominators {shares}; "
          f"loss max rel diff {worst_loss:.2e}; {name}: max ||a-b||/||b|| {worst_weight:.2e} ({where}), largest "
          f"element difference / max|w| {worst_element:.2e}")
    if worst_loss > 1e-6 or worst_weight > 1e-6:
        sys.exit(f"data-parallel run differs from one process: losses {a} vs {b}")
    if a[0] == a[-1]:
        sys.exit("the loss did not change: nothing was trained")


def rank_env(world, rank, port):
    return dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def check_killed(agora, source, work, how=signal.SIGKILL):
    """Rank 1 of 3 is SIGKILLed (its sockets close: the others notice at once) or SIGSTOPped (it hangs: the
    others must give up after distributed.timeout_s)."""
    name = "killed" if how == signal.SIGKILL else "stopped"
    out = run_dir(work, name)
    port, timeout = free_port(), 20
    args = train_args(source, out, f"training.batch_size={R}", "training.max_steps=100000",
                      f"distributed.timeout_s={timeout}")
    procs = [subprocess.Popen([agora, *args], cwd=source, env=rank_env(3, r, port), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in range(3)]
    metrics = os.path.join(out, "metrics.jsonl")
    deadline = time.time() + 120
    while time.time() < deadline and not (os.path.exists(metrics) and sum(1 for _ in open(metrics)) >= 2):
        if any(p.poll() is not None for p in procs):
            sys.exit("a rank ended before the kill:\n" + "\n".join(p.communicate()[1] for p in procs))
        time.sleep(0.05)
    procs[1].send_signal(how)
    killed_at = time.time()
    for rank in (0, 2):
        try:
            _, err = procs[rank].communicate(timeout=timeout + 30)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            sys.exit(f"rank {rank} still running {timeout + 30} s after rank 1 was {name}: it hangs")
        took = time.time() - killed_at
        if procs[rank].returncode == 0 or "failed" not in err or f"rank {rank} of 3" not in err:
            sys.exit(f"rank {rank} should fail with an error naming the collective and its rank; exit "
                     f"{procs[rank].returncode}:\n{err}")
        print(f"rank {rank} failed {took:.1f} s after rank 1 was {name}: {err.strip().splitlines()[-1][:300]}")
    procs[1].kill()
    procs[1].communicate()


def check_absent(agora, source, work):
    out = run_dir(work, "absent")
    timeout = 5
    start = time.time()
    proc = subprocess.run([agora, *train_args(source, out, f"distributed.timeout_s={timeout}")], cwd=source,
                          env=rank_env(2, 0, free_port()), capture_output=True, text=True, timeout=timeout + 60)
    took = time.time() - start
    if proc.returncode == 0 or "rank 0 of 2" not in proc.stderr or "within 5 s failed" not in proc.stderr:
        sys.exit(f"a lone rank 0 of 2 should fail after {timeout} s naming the rendezvous; exit {proc.returncode}:\n"
                 f"{proc.stderr}")
    if took > timeout + 30:
        sys.exit(f"the lone rank took {took:.0f} s to give up, timeout {timeout} s")
    print(f"lone rank 0 of 2 gave up after {took:.1f} s: {proc.stderr.strip().splitlines()[-1][:300]}")


def check_resize(agora, source, work):
    out = run_dir(work, "resize")
    run([agora, "launch", "--nproc=2", *train_args(source, out, f"training.batch_size={R}",
                                                    "training.stop_after_steps=2")], source)
    proc = subprocess.run([agora, *train_args(source, out, f"training.batch_size={2 * R}")], cwd=source,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode == 0 or "written by a run of 2 ranks; this run has 1" not in proc.stderr:
        sys.exit(f"resuming a 2-rank checkpoint with 1 process should fail clearly; exit {proc.returncode}:\n"
                 f"{proc.stderr}")
    print(f"resume with another world size: {proc.stderr.strip().splitlines()[-1][:400]}")


def check_sigterm(agora, source, work):
    out = run_dir(work, "sigterm")
    args = train_args(source, out, f"training.batch_size={R}", "training.max_steps=100000")
    proc = subprocess.Popen([agora, "launch", "--nproc=2", *args], cwd=source, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    metrics = os.path.join(out, "metrics.jsonl")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(metrics) and sum(1 for _ in open(metrics)) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # the launcher forwards it to both ranks
    _, err = proc.communicate(timeout=120)
    if proc.returncode != 0:
        sys.exit(f"after SIGTERM both ranks should save and exit 0; agora launch exited {proc.returncode}\n{err}")
    folders = sorted(os.listdir(os.path.join(out, "checkpoints")))
    step = len(losses(out))
    if folders != [f"step_{step:07d}"]:
        sys.exit(f"expected the preemption checkpoint step_{step:07d} only (rank 0 writes it), found {folders}")
    with open(os.path.join(out, "log.txt")) as f:
        if "checkpoint (preempted)" not in f.read():
            sys.exit("log.txt does not report the preemption checkpoint")
    # Resume with the same world size continues from it.
    run([agora, "launch", "--nproc=2", *train_args(source, out, f"training.batch_size={R}",
                                                    "training.max_steps=100000",
                                                    f"training.stop_after_steps={step + 2}")], source)
    with open(os.path.join(out, "log.txt")) as f:
        if f"at step {step}" not in f.read():
            sys.exit(f"the second run did not resume from step {step}")
    if len(losses(out)) != step + 2:
        sys.exit(f"expected {step + 2} steps after the resume, metrics.jsonl has {len(losses(out))}")
    print(f"SIGTERM to agora launch: both ranks stopped after step {step}, rank 0 saved, exit 0; resumed with 2 "
          f"ranks to step {step + 2}")


def check_nccl1(agora, source, work):
    import torch  # the venv's: does this machine have a GPU?
    if not torch.cuda.is_available():
        print("SKIPPED: no CUDA GPU on this machine; NCCL world size 1 training runs on a GPU machine")
        sys.exit(77)
    out = run_dir(work, "nccl1")
    run([agora, "launch", "--nproc=1", *train_args(source, out, "device=cuda", "distributed.backend=nccl")], source)
    with open(os.path.join(out, "log.txt")) as f:
        text = f.read()
    if "nccl backend" not in text or len(losses(out)) != STEPS:
        sys.exit(f"expected {STEPS} steps over the nccl backend:\n{text}")
    print(f"NCCL, world size 1: {STEPS} steps trained, losses {losses(out)}")


def main():
    agora, source, work, which = sys.argv[1:5]
    EXTRA.extend(sys.argv[5:])
    os.makedirs(work, exist_ok=True)
    if which.startswith("same:"):
        _, world, accum, launcher = which.split(":")
        check_same(agora, source, work, int(world), int(accum), launcher)
    else:
        {"killed": check_killed, "stopped": lambda *a: check_killed(*a, how=signal.SIGSTOP), "absent": check_absent,
         "resize": check_resize, "sigterm": check_sigterm, "nccl1": check_nccl1}[which](agora, source, work)


if __name__ == "__main__":
    main()
