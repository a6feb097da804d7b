"""Whole training steps (forward, backward, AdamW update) of Agora and of HF transformers + PEFT, side by side in
one run: the same random weights (one HF folder both load), the same packed rows, the same LoRA targets, torch SDPA
attention in both, bf16 on CUDA and fp32 on the CPU. Per run: step time (median after warm-up; CUDA events on
CUDA), tokens/s, peak memory, the loss of every step (both start from the same weights, so the first losses must
agree, and both must go down: a benchmark that trains nothing shows it here), and MFU on CUDA.

usage: python benchmarks/train_step/train_step_bench.py [--runs small:lora,small:full] [--device cpu|cuda]
           [--rows 2] [--seq-len 512] [--steps 8] [--warmup 2] [--json OUT] [--agora-bin build/benchmarks/...]
           [--deadline-s SECONDS] [--commit SHA]
A run is SHAPE:MODE, SHAPE one of tools/make_random_llama.py's SHAPES, MODE lora (rank 16, alpha 32, every
projection) or full. Each framework runs in its own process, one after the other, so peak memory is its own.

Precision, as each framework's user runs it: Agora keeps bf16 weights with fp32 LoRA adapters, or fp32 master
weights and moments for full training (`agora train`); HF+PEFT LoRA keeps the bf16 base with PEFT's fp32
adapters, and HF full training keeps fp32 weights under bf16 autocast (what Trainer(bf16=True) does).

MFU (CUDA): model FLOPs per step / (step time x the GPU's dense bf16 peak), with
  forward FLOPs = 2 P T + 2 L (heads x head_dim) sum_samples len^2   (P: the parameters of every matmul, lm_head
                  included, embeddings excluded; T: tokens; the attention term counts causal QK^T and PV)
  full step = 3 x forward;  LoRA step = 2 x the matmul term + 3 x the attention term (frozen weights get no
  weight gradient; the adapters' own FLOPs are left out).
The last line of the table is the headline: Agora's tokens/s over HF+PEFT's, per run and their geometric mean.
"""
import argparse
import datetime
import json
import math
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_RANK, LORA_ALPHA = 16, 32
LEARNING_RATE = {"lora": 1e-3, "full": 1e-4}
# Dense bf16 tensor-core peaks (no sparsity), by the name torch reports.
PEAK_BF16_FLOPS = {"H200": 989.4e12, "H100": 989.4e12, "A100": 312e12}


def make_batch(rows, seq_len, vocab, seed):
    """Rows of seq_len tokens, each packed with samples of 32..seq_len/2 tokens (the last one cut to fit); the
    first quarter of every sample is its untrained prompt. Labels follow HF (-100 = untrained; the first token of
    every sample is untrained, so no prediction crosses into the next sample)."""
    rng = random.Random(seed)
    input_ids, labels, position_ids, cu_seqlens = [], [], [], [0]
    for _ in range(rows):
        used = 0
        while used < seq_len:
            n = min(rng.randint(32, max(32, seq_len // 2)), seq_len - used)
            ids = [rng.randrange(3, vocab) for _ in range(n)]
            prompt = max(1, n // 4)
            input_ids += ids
            labels += [-100] * prompt + ids[prompt:]
            position_ids += list(range(n))
            used += n
            cu_seqlens.append(cu_seqlens[-1] + n)
    return dict(rows=rows, seq_len=seq_len, input_ids=input_ids, labels=labels, position_ids=position_ids,
                cu_seqlens=cu_seqlens)


def peak_memory_mib(torch, cuda):
    if cuda:
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_hf(args):
    """One framework's measurement in this process: HF transformers (+ PEFT for LoRA)."""
    import torch
    from transformers import AutoModelForCausalLM

    cuda = args.device == "cuda"
    lora = args.mode == "lora"
    autocast = cuda and not lora  # full training on CUDA: fp32 weights, bf16 autocast (Trainer(bf16=True))
    dtype = torch.bfloat16 if cuda and lora else torch.float32
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype, attn_implementation="sdpa").to(args.device)
    parameters = sum(p.numel() for p in model.parameters())
    if lora:
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, lora_dropout=0.0,
                                                 target_modules=LORA_TARGETS, task_type="CAUSAL_LM"))
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=args.lr, weight_decay=0.0, **({"fused": True} if cuda else {}))
    with open(args.batch) as f:
        batch = json.load(f)
    shape = (batch["rows"], batch["seq_len"])
    # No attention_mask: transformers finds the packed samples from the restarting position_ids and keeps
    # attention inside each (masking_utils.find_packed_sequence_indices).
    tensors = {k: torch.tensor(batch[k]).view(shape).to(args.device) for k in ("input_ids", "labels", "position_ids")}

    step_ms, losses = [], []
    for step in range(args.warmup + args.steps):
        if cuda and step == args.warmup:
            torch.cuda.reset_peak_memory_stats()
        if cuda:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        else:
            t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            loss = model(**tensors, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        value = loss.item()
        if cuda:
            stop.record()
            stop.synchronize()
            ms = start.elapsed_time(stop)
        else:
            ms = (time.perf_counter() - t0) * 1e3
        if step >= args.warmup:
            step_ms.append(ms)
        losses.append(value)
        print(f"step {step}  {ms:.1f} ms  loss {value:.4f}", flush=True)
    labels = torch.tensor(batch["labels"])
    result = dict(framework="hf+peft" if lora else "hf", mode=args.mode, device=args.device,
                  dtype="bfloat16" if cuda else "float32", attention="sdpa", parameters=parameters,
                  trained_parameters=sum(p.numel() for p in trained), tokens=labels.numel(),
                  trained_tokens=int((labels != -100).sum()), warmup_steps=args.warmup, step_ms=step_ms,
                  loss=losses, peak_memory_mib=peak_memory_mib(torch, cuda))
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


def model_flops(config, batch, mode):
    """The docstring's model FLOPs of one step."""
    d, layers = config["hidden_size"], config["num_hidden_layers"]
    head_dim = config.get("head_dim") or d // config["num_attention_heads"]
    q_dim, kv_dim = config["num_attention_heads"] * head_dim, config["num_key_value_heads"] * head_dim
    per_layer = d * (2 * q_dim + 2 * kv_dim) + 3 * d * config["intermediate_size"]  # q, o, k, v; gate, up, down
    matmul_params = layers * per_layer + config["vocab_size"] * d
    tokens = len(batch["input_ids"])
    cu = batch["cu_seqlens"]
    attention_forward = 2 * layers * q_dim * sum((b - a) ** 2 for a, b in zip(cu, cu[1:]))
    matmul_forward = 2 * matmul_params * tokens
    if mode == "full":
        return 3 * (matmul_forward + attention_forward)
    return 2 * matmul_forward + 3 * attention_forward


def median(values):
    s = sorted(values)
    return (s[(len(s) - 1) // 2] + s[len(s) // 2]) / 2


def summarise(result, flops, peak_flops):
    ms = median(result["step_ms"])
    out = dict(step_ms_median=ms, tokens_per_s=result["tokens"] / (ms / 1e3))
    if peak_flops:
        out["mfu"] = flops / (ms / 1e3) / peak_flops
    return out


def run_pair(args, shape, mode, workdir, gpu_name):
    import torch
    from make_random_llama import make_model

    cuda = args.device == "cuda"
    folder = os.path.join(workdir, f"{shape}-model")
    if not os.path.exists(os.path.join(folder, "config.json")):
        make_model(shape, args.device, torch.bfloat16 if cuda else torch.float32, seed=0).save_pretrained(folder)
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    batch = make_batch(args.rows, args.seq_len, config["vocab_size"], seed=1)
    batch_path = os.path.join(workdir, f"{shape}-batch.json")
    with open(batch_path, "w") as f:
        json.dump(batch, f)
    if cuda:
        torch.cuda.empty_cache()
    common = ["--model", folder, "--batch", batch_path, "--device", args.device, "--mode", mode,
              "--steps", str(args.steps), "--warmup", str(args.warmup), "--lr", str(LEARNING_RATE[mode])]
    results = {}
    for name, command in (
            ("hf", [sys.executable, os.path.abspath(__file__), "--run-hf"] + common),
            ("agora", [args.agora_bin] + common + ["--lora-rank", str(LORA_RANK), "--lora-alpha", str(LORA_ALPHA),
                                                    "--lora-targets", ",".join(LORA_TARGETS), "--attention", "sdpa",
                                                    "--loss", "fused" if cuda else "torch"])):
        out = os.path.join(workdir, f"{shape}-{mode}-{name}.json")
        print(f"== {shape} {mode}: {name}", flush=True)
        subprocess.run(command + ["--out", out], check=True)
        with open(out) as f:
            results[name] = json.load(f)
    flops = model_flops(config, batch, mode)
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if gpu_name and k in gpu_name), None) if cuda else None
    hf, agora = results["hf"], results["agora"]
    first_hf, first_agora = hf["loss"][0], agora["loss"][0]
    tolerance = 1e-2 if cuda else 1e-4
    return dict(shape=shape, mode=mode, rows=args.rows, seq_len=args.seq_len, samples=len(batch["cu_seqlens"]) - 1,
                model_flops_per_step=flops, peak_bf16_flops=peak,
                same_start=abs(first_agora - first_hf) <= tolerance * abs(first_hf),
                trains={k: r["loss"][-1] < r["loss"][0] for k, r in results.items()},
                hf=dict(hf, **summarise(hf, flops, peak)), agora=dict(agora, **summarise(agora, flops, peak)))


def print_table(runs):
    header = (f"{'run':<22} {'framework':<9} {'step ms':>9} {'tokens/s':>10} {'peak MiB':>9} "
              f"{'loss first -> last':>20} {'MFU':>6}")
    print(header)
    print("-" * len(header))
    for r in runs:
        for key in ("hf", "agora"):
            x = r[key]
            mfu = f"{100 * x['mfu']:.1f}%" if "mfu" in x else "-"
            print(f"{r['shape'] + ' ' + r['mode']:<22} {x['framework']:<9} {x['step_ms_median']:>9.1f} "
                  f"{x['tokens_per_s']:>10.0f} {x['peak_memory_mib']:>9.0f} "
                  f"{x['loss'][0]:>9.4f} -> {x['loss'][-1]:<8.4f} {mfu:>6}")
        print(f"{'':<22} same first loss: {'yes' if r['same_start'] else 'NO'}; trains: "
              + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in r["trains"].items()))
    ratios = [r["agora"]["tokens_per_s"] / r["hf"]["tokens_per_s"] for r in runs]
    geomean = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else float("nan")
    print("tokens/s Agora / HF+PEFT: " + ", ".join(f"{r['shape']} {r['mode']} {x:.2f}x" for r, x in zip(runs, ratios))
          + f"; geomean {geomean:.2f}x")
    return geomean


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-hf", action="store_true", help=argparse.SUPPRESS)  # the HF child process
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--batch", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="lora", help=argparse.SUPPRESS)
    parser.add_argument("--lr", type=float, default=1e-3, help=argparse.SUPPRESS)
    parser.add_argument("--runs", default="small-cpu:lora,small-cpu:full")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rows", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json")
    parser.add_argument("--agora-bin", default=os.path.join(ROOT, "build", "benchmarks", "train_step_bench"))
    parser.add_argument("--deadline-s", type=float, default=0, help="skip runs that would start after this")
    parser.add_argument("--commit", default=os.environ.get("AGORA_COMMIT", ""))
    args = parser.parse_args()
    if args.run_hf:
        return run_hf(args)

    import peft
    import torch
    import transformers

    cuda = args.device == "cuda"
    gpu_name = torch.cuda.get_device_name() if cuda else None
    commit = args.commit or subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                                           text=True).stdout.strip()
    record = dict(benchmark="train_step", date=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  commit=commit, device=gpu_name or f"CPU ({os.cpu_count()} cores, {platform.processor()})",
                  torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__,
                  lora=dict(rank=LORA_RANK, alpha=LORA_ALPHA, targets=LORA_TARGETS), learning_rate=LEARNING_RATE,
                  steps=args.steps, warmup=args.warmup, runs=[], skipped=[])
    begin = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="agora-train-step-") as workdir:
        for spec in args.runs.split(","):
            shape, mode = spec.split(":")
            if args.deadline_s and time.monotonic() - begin > args.deadline_s:
                record["skipped"].append(spec)
                continue
            record["runs"].append(run_pair(args, shape, mode, workdir, gpu_name))
            write_json(args.json, record)  # after every run: a kill later still leaves the finished ones
    if record["skipped"]:
        print("skipped (deadline): " + ", ".join(record["skipped"]))
    record["headline_tokens_per_s_ratio_geomean"] = print_table(record["runs"])
    write_json(args.json, record)


def write_json(path, record):
    """Whole or not at all: a temp file, fsync, rename."""
    if not path:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)

if __name__ == "__main__":
    main()
