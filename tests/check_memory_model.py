"""Calibration of trainer/memory_model.h against what `agora train` holds on the CPU.

usage: check_memory_model.py AGORA SOURCE_DIR WORK_DIR [--tolerance 0.1] [--case "key=value ..."]...
                             [--shape hidden_size=512,num_hidden_layers=8,...] [--world_size N]

A random fp32 Llama (hidden 256, intermediate 688, 12 layers, 4 heads, vocab 8000: 13.6M parameters, small enough
for a few seconds a step on two cores, with activations the larger part of its memory) is written to WORK_DIR and
fully fine-tuned for one step of 4 x 256 packed tokens of the demo data on the CPU (torch's loss, as loss=auto
picks there), once as is and once with activation checkpointing (or each --case given). The process's resident
anonymous memory during the step (RssAnon of /proc/PID/status: what it allocated, without mapped files such as the
safetensors or the libraries; see peak_rss_anon) is compared with `agora memory --json`'s predicted total at
level none.

What is honest to compare: the process also holds libtorch's own state, the tokenised data, buffers, all of which
the model does not predict. So the same run on the embedded tiny model (0.19M parameters) is the baseline, and the
check compares differences: measured (peak - tiny's peak) against predicted (total - tiny's total). glibc's malloc
keeps freed memory and reuses it as fragmentation allows, which made the default allocator's peaks of one run vary
by ~15 % from run to run; MALLOC_MMAP_THRESHOLD_=65536 maps every allocation of 64 KiB and more on its own and
returns it on free, so RssAnon follows the bytes alive (what a GPU allocator holds, less its caching). MKL's own
memory manager keeps its GEMM buffers, among them a packed fp32 copy of the head's [vocab, hidden] weight (the
gap to the prediction grew by exactly that with the vocabulary: 6.6, 11.8, 19.8 MiB at 2000, 8000, 16000 words);
MKL_DISABLE_FAST_MM=1 frees them after each call. Neither is part of the model's memory on a GPU. With
AGORA_MEMORY_DEFAULT_MALLOC=1 the runs are repeated under the default allocators, for information.

With --world_size N the runs are `agora launch --nproc N` (Gloo ranks on the CPU, each with the same 4 rows per
micro-batch), a case's `distributed.sharding=L` picks the level (default: none), every rank is measured and the
largest rank's peak is compared with the level's per-rank prediction for N ranks; the baseline is the tiny model
at the same world size and level.

Prints a table and writes WORK_DIR/calibration.json; exits 1 when a prediction misses by more than the tolerance.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
from safetensors.numpy import save_file

SHAPE = dict(hidden_size=256, intermediate_size=688, num_hidden_layers=12, num_attention_heads=4,
             num_key_value_heads=4, vocab_size=8000)
COMMON = ["device=cpu", "lora.rank=0", "lora.dropout=0", "data.validation.path=", "data.max_seq_len=256",
          "training.batch_size=4", "training.gradient_accumulation_steps=1", "training.max_steps=1",
          "logging.tensorboard=false", "logging.log_every_steps=1", "resume=none"]
MIB = 1024 * 1024


def make_model(folder, tokenizer):
    """A random fp32 HF Llama folder: config.json, model.safetensors, the tiny model's tokenizer (800 pieces)."""
    os.makedirs(folder, exist_ok=True)
    h, i, layers, vocab = (SHAPE[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size"))
    rng = np.random.default_rng(1234)
    tensors = {}

    def weight(name, rows, cols):
        tensors[name] = (rng.standard_normal((rows, cols), dtype=np.float32) / np.sqrt(cols)).astype(np.float32)

    weight("model.embed_tokens.weight", vocab, h)
    weight("lm_head.weight", vocab, h)
    tensors["model.norm.weight"] = np.ones(h, np.float32)
    q = SHAPE["num_attention_heads"] * (h // SHAPE["num_attention_heads"])
    kv = SHAPE["num_key_value_heads"] * (h // SHAPE["num_attention_heads"])
    for layer in range(layers):
        p = f"model.layers.{layer}."
        weight(p + "self_attn.q_proj.weight", q, h)
        weight(p + "self_attn.k_proj.weight", kv, h)
        weight(p + "self_attn.v_proj.weight", kv, h)
        weight(p + "self_attn.o_proj.weight", h, q)
        weight(p + "mlp.gate_proj.weight", i, h)
        weight(p + "mlp.up_proj.weight", i, h)
        weight(p + "mlp.down_proj.weight", h, i)
        tensors[p + "input_layernorm.weight"] = np.ones(h, np.float32)
        tensors[p + "post_attention_layernorm.weight"] = np.ones(h, np.float32)
    save_file(tensors, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    config = dict(SHAPE, architectures=["LlamaForCausalLM"], model_type="llama", rms_norm_eps=1e-5,
                  rope_theta=10000.0, max_position_embeddings=2048, tie_word_embeddings=False, bos_token_id=1,
                  eos_token_id=2, torch_dtype="float32")
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    shutil.copy(tokenizer, os.path.join(folder, "tokenizer.model"))


def memory_kib(pid):
    """RssAnon, RssFile, RssShmem and VmHWM of /proc/PID/status, in KiB."""
    values = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("RssAnon", "RssFile", "RssShmem", "VmHWM"):
                    values[key] = int(value.split()[0])
    except OSError:
        pass
    return values


def children(pid):
    """The processes `pid` started (agora launch's ranks), from /proc/PID/task/*/children."""
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return found


def peak_rss_anon(command, cwd, env, output_dir, ranks=1):
    """Peak anonymous memory (bytes) of `command` training into the fresh `output_dir` during its step (with
    ranks > 1, `command` is agora launch: the largest of its ranks' peaks), each rank's peak, and the run's wall
    time.

    The window opens at the log's "objective" line (the model and AdamW's state are allocated; the loop starts), where
    the kernel's peak-RSS mark is reset (`5` to /proc/PID/clear_refs), and closes at the step's log line (the final
    checkpoint's save comes after). The peak is the larger of two lower bounds: RssAnon polled every millisecond
    (the step's peak lasts about a millisecond and a busy machine's poll can miss it) and the kernel's exact VmHWM
    less the file pages (libraries) resident at the last poll (which grow by a few MiB during the step)."""
    shutil.rmtree(output_dir, ignore_errors=True)
    command = command + [f"output_dir={output_dir}"]
    start = time.time()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, started, stepped = [], threading.Event(), threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if " objective " in line:
                started.set()
            if " step 1/1 " in line:
                stepped.set()

    reader = threading.Thread(target=read)
    reader.start()
    pids, polled, last, reset = [], {}, {}, False
    while proc.poll() is None and not stepped.is_set():
        if not pids:
            pids = [proc.pid] if ranks == 1 else children(proc.pid)
            if len(pids) != ranks:
                pids = []
        if started.is_set() and pids and not reset:
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/clear_refs", "w") as f:
                        f.write("5")
                except OSError:
                    pass
            reset = True
        if reset:
            for pid in pids:
                values = memory_kib(pid)
                if values:
                    last[pid] = values
                    polled[pid] = max(polled.get(pid, 0), values["RssAnon"])
        time.sleep(0.001)
    proc.wait()
    reader.join()
    if proc.returncode != 0 or not stepped.is_set() or len(last) != ranks:
        sys.exit(f"agora train failed ({proc.returncode}): {' '.join(command)}\n{''.join(lines[-30:])}")
    peaks = [max(polled[pid], last[pid]["VmHWM"] - last[pid]["RssFile"] - last[pid].get("RssShmem", 0)) * 1024
             for pid in pids]
    return max(peaks), peaks, time.time() - start


def level_of(overrides):
    levels = [o.partition("=")[2] for o in overrides if o.startswith("distributed.sharding=")]
    return levels[-1] if levels else "none"


def predicted_total(agora, source, overrides, ranks):
    out = subprocess.run([agora, "memory", "--config", "recipes/tiny_demo.yaml", "--json", f"--world_size={ranks}"]
                         + overrides, cwd=source, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"agora memory failed: {out.stderr}")
    return json.loads(out.stdout)["levels"][level_of(overrides)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("agora")
    parser.add_argument("source")
    parser.add_argument("work")
    parser.add_argument("--tolerance", type=float, default=0.1)
    parser.add_argument("--case", action="append", help="overrides of one measured run (default: plain and "
                                                         "activation checkpointing)")
    parser.add_argument("--shape", default="",
                        help="the random model's dimensions, e.g. hidden_size=512,vocab_size=32000")
    parser.add_argument("--world_size", type=int, default=1, help="ranks (agora launch, Gloo on the CPU)")
    args = parser.parse_args()
    for item in filter(None, args.shape.split(",")):
        key, _, value = item.partition("=")
        if key not in SHAPE:
            sys.exit(f"--shape: unknown dimension {key} (one of {', '.join(SHAPE)})")
        SHAPE[key] = int(value)
    agora, source, work = os.path.abspath(args.agora), os.path.abspath(args.source), os.path.abspath(args.work)
    shutil.rmtree(work, ignore_errors=True)
    model = os.path.join(work, "model")
    make_model(model, os.path.join(source, "assets/tiny-llama/tokenizer.model"))
    cases = args.case or ["model.activation_checkpointing=false", "model.activation_checkpointing=true"]

    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MKL_DISABLE_FAST_MM="1")
    ranks = args.world_size
    launch = [agora] + (["launch", f"--nproc={ranks}"] if ranks > 1 else []) + ["train", "--config",
                                                                               "recipes/tiny_demo.yaml"]
    results, failed = [], False
    baselines = {}
    print(f"{'case':58} {'measured MiB':>12} {'predicted MiB':>13} {'error':>7}   (peak at; run time)")
    for case in cases:
        overrides = case.split()
        # The baseline: the same run on the tiny model, with the same dtype, loss, tokens and sharding (cached per
        # setting).
        key = tuple(o for o in overrides if o.startswith(("loss=", "data.", "training.", "model.dtype=",
                                                          "distributed.")))
        if key not in baselines:
            tiny = COMMON + ["model.path=assets/tiny-llama"] + list(key)
            peak, _, _ = peak_rss_anon(launch + tiny, source, env, f"{work}/run", ranks)
            baselines[key] = (peak, predicted_total(agora, source, tiny, ranks)["total"])
        tiny_peak, tiny_predicted = baselines[key]
        run = COMMON + [f"model.path={model}"] + overrides
        peak, rank_peaks, seconds = peak_rss_anon(launch + run, source, env, f"{work}/run", ranks)
        # For information (AGORA_MEMORY_DEFAULT_MALLOC=1): the same under glibc's default malloc.
        default_peak = peak_rss_anon(launch + run, source, dict(os.environ), f"{work}/run", ranks)[0] \
            if os.environ.get("AGORA_MEMORY_DEFAULT_MALLOC") else 0
        prediction = predicted_total(agora, source, run, ranks)
        measured, predicted = peak - tiny_peak, prediction["total"] - tiny_predicted
        error = predicted / measured - 1
        failed |= abs(error) > args.tolerance
        results.append(dict(case=case, measured_bytes=measured, predicted_bytes=predicted, error=error,
                            peak_bytes=peak, rank_peak_bytes=rank_peaks, baseline_peak_bytes=tiny_peak, predicted_total_bytes=prediction["total"],
                            baseline_predicted_bytes=tiny_predicted, peak_at=prediction["peak_at"],
                            default_malloc_peak_bytes=default_peak, prediction=prediction, seconds=seconds))
        print(f"{case:58} {measured / MIB:12.1f} {predicted / MIB:13.1f} {error:+7.1%}   "
              f"({prediction['peak_at']}; {seconds:.1f} s)")
        print(f"    peak RssAnon {peak / MIB:.1f} MiB"
              + (f" (ranks: {', '.join(f'{p / MIB:.1f}' for p in rank_peaks)})" if ranks > 1 else "")
              + f" - tiny model's {tiny_peak / MIB:.1f} MiB; predicted "
              f"{prediction['total'] / MIB:.1f} - {tiny_predicted / MIB:.1f} MiB"
              + (f"; default malloc peak {default_peak / MIB:.1f} MiB" if default_peak else ""))
    with open(os.path.join(work, "calibration.json"), "w") as f:
        json.dump(dict(shape=SHAPE, common=COMMON, world_size=ranks, results=results), f, indent=2)
    if failed:
        sys.exit(f"a prediction missed the measured memory by more than {args.tolerance:.0%}")
    print(f"every prediction within {args.tolerance:.0%} of the measurement")


if __name__ == "__main__":
    main()
