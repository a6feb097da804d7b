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
  sharded:L:W:A      `same` with distributed.sharding=L (optimizer | gradients | parameters): the losses and final
                     weights of one process; at level parameters the weights are read from the rank files through
                     sharding.json (numpy, independently of agora) and through `agora export --checkpoint`.
  reshard:L          a run sharded at level L over 2 ranks (batch 3 each) saves at step 2; resumed by 3 ranks
                     (batch 2, level L) and by 1 process (batch 6, unsharded) it continues exactly as unbroken runs
                     at those sizes do (<= 1e-6): the same global batches, the state re-cut from the rank files.
  resize             a 2-rank run's checkpoint, resumed by 1 process with a global batch that does not divide the
                     rows consumed: a clear error naming both batch sizes.
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


def sharded_weights(folder):
    """The trainable weights of a sharded checkpoint, put together from sharding.json and the rank files."""
    with open(os.path.join(folder, "sharding.json")) as f:
        layout = json.load(f)
    files = [load_file(os.path.join(folder, f"rank_{r:05d}.safetensors")) for r in range(layout["world_size"])]
    weights = {}
    for group in layout["groups"]:
        flat = np.concatenate([f[group["name"] + ".param"] for f in files])[:group["numel"]]
        for m in group["members"]:
            n = int(np.prod(m["shape"], dtype=np.int64))
            weights[m["name"]] = flat[m["offset"]:m["offset"] + n].reshape(m["shape"])
    return weights


def compare_weights(wa, wb, what):
    if sorted(wa) != sorted(wb):
        sys.exit(f"{what}: different tensors: {sorted(set(wa) ^ set(wb))}")
    return max((relative(wa[k], wb[k]), k) for k in wb)


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


def check_same(agora, source, work, world, accum, launcher, sharding="none"):
    accum_args = [f"training.gradient_accumulation_steps={accum}", f"distributed.sharding={sharding}"]
    one = run_dir(work, f"one_w{world}_a{accum}")
    run([agora, *train_args(source, one, f"training.batch_size={R * world}", *accum_args)], source)
    many = run_dir(work, f"dp_w{world}_a{accum}_{launcher}_{sharding}")
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
    name, wb = final_weights(one)
    folder = os.path.join(many, "checkpoints", f"step_{STEPS:07d}")
    if os.path.exists(os.path.join(folder, "sharding.json")) and not os.path.exists(os.path.join(folder, name)):
        name, wa = "rank files", sharded_weights(folder)
        # The export makes them a model folder transformers loads: the same tensors, bit for bit.
        exported = os.path.join(many, "exported")
        run([agora, "export", f"--checkpoint={folder}", f"--model={source}/assets/tiny-llama", f"--out={exported}",
             "--dtype=float32"],
            source)
        we = load_file(os.path.join(exported, "model.safetensors"))
        for k, v in wa.items():
            if not np.array_equal(we[k], v):
                sys.exit(f"agora export --checkpoint: {k} differs from the rank files")
        print(f"agora export --checkpoint wrote the {len(wa)} trained tensors of the rank files bit for bit")
    else:
        _, wa = final_weights(many)
    if sorted(wa) != sorted(wb):
        sys.exit(f"{name}: different tensors in the two runs")
    worst_weight, where = max((relative(wa[k], wb[k]), k) for k in wb)
    worst_element = max(largest_difference(wa[k], wb[k]) for k in wb)
    print(f"{world} ranks ({launcher}, sharding {sharding}), accumulation {accum}: per-rank first-step denominators {shares}; "
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
                                                    "training.stop_after_steps=1")], source)
    proc = subprocess.run([agora, *train_args(source, out, f"training.batch_size={3 * R}")], cwd=source,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode == 0 or "global batches of 4 rows" not in proc.stderr or "global batch is 6 rows" not in proc.stderr:
        sys.exit(f"resuming after 4 rows with global batches of 6 should fail clearly; exit {proc.returncode}:\n"
                 f"{proc.stderr}")
    print(f"resume with a global batch that does not divide the rows read: {proc.stderr.strip().splitlines()[-1][:400]}")


def check_reshard(agora, source, work, level):
    """Save at 2 ranks, resume at 3 and at 1: the continuation of unbroken runs at the new sizes."""
    rows, stop = 6, 2
    saved = run_dir(work, f"reshard_{level}_w2")
    run([agora, "launch", "--nproc=2", *train_args(source, saved, f"training.batch_size={rows // 2}",
                                                    f"distributed.sharding={level}",
                                                    f"training.stop_after_steps={stop}")], source)
    if not os.path.exists(os.path.join(saved, "checkpoints", f"step_{stop:07d}", "sharding.json")):
        sys.exit("the 2-rank run did not write a sharded checkpoint")
    for world, sharding in ((3, level), (1, "none")):
        args = [f"training.batch_size={rows // world}", f"distributed.sharding={sharding}"]
        unbroken = run_dir(work, f"reshard_{level}_unbroken_w{world}")
        resumed = run_dir(work, f"reshard_{level}_resumed_w{world}")
        checkpoint = os.path.join(saved, "checkpoints", f"step_{stop:07d}")
        for out, extra in ((unbroken, []), (resumed, [f"resume={checkpoint}"])):
            cmd = [*train_args(source, out, *args, *extra)]
            run([agora, "launch", f"--nproc={world}", *cmd] if world > 1 else [agora, *cmd], source)
        with open(os.path.join(resumed, "log.txt")) as f:
            log = f.read()
        if f"resuming a run of 2 ranks with {world}" not in log or f"at step {stop}" not in log:
            sys.exit(f"the {world}-rank run did not resume the 2-rank checkpoint at step {stop}:\n{log[-2000:]}")
        a, b = losses(resumed), losses(unbroken)[stop:]
        worst_loss = max(abs(x - y) / abs(y) for x, y in zip(a, b))
        folder = lambda out: os.path.join(out, "checkpoints", f"step_{STEPS:07d}")
        weights = lambda out: sharded_weights(folder(out)) if not os.path.exists(
            os.path.join(folder(out), "model.safetensors")) else final_weights(out)[1]
        worst_weight, where = compare_weights(weights(resumed), weights(unbroken), f"{world} ranks")
        print(f"level {level}, saved at 2 ranks step {stop}, resumed at {world} ({sharding}): losses {len(a)} "
              f"steps, max rel diff {worst_loss:.2e}; final weights max ||a-b||/||b|| {worst_weight:.2e} ({where})")
        if len(a) != STEPS - stop or worst_loss > 1e-6 or worst_weight > 1e-6:
            sys.exit(f"the resumed run differs from the unbroken one: {a} vs {b}")


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
    elif which.startswith("sharded:"):
        _, level, world, accum = which.split(":")
        check_same(agora, source, work, int(world), int(accum), "agora", level)
    elif which.startswith("reshard:"):
        check_reshard(agora, source, work, which.split(":")[1])
    else:
        {"killed": check_killed, "stopped": lambda *a: check_killed(*a, how=signal.SIGSTOP), "absent": check_absent,
         "resize": check_resize, "sigterm": check_sigterm, "nccl1": check_nccl1}[which](agora, source, work)


if __name__ == "__main__":
    main()
