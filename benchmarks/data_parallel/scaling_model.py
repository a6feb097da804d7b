"""Performance model of Agora's data parallelism: step time = compute + exposed communication.

For the recipes' models (Llama-2-7B, Llama-3-8B; full fine-tuning and LoRA, recipes/*.yaml) at 8, 64 and 512
GPUs it predicts the per-step compute time, the gradient all-reduce time of NCCL, how much of it the bucketed
overlap hides, and the scaling efficiency = compute / (compute + exposed communication). Every hardware figure
is a named assumption below, to be replaced by measurements (`--mfu`, `--nvlink-busbw`, ...): one rank's
measured step compute calibrates MFU, a world-size-1 NCCL all-reduce the fixed per-collective cost.
Prints a table (last line: the efficiency at 8 and 64 GPUs of Llama-3-8B full fine-tuning) and writes JSON.
No GPU needed: it is arithmetic. docs/data_parallel_performance.md explains each term.
"""

import argparse
import json
import math

# --- the models (Hugging Face configs) and the recipes' training shapes -----------------------------------------
MODELS = {
    "Llama-2-7B": dict(layers=32, hidden=4096, ffn=11008, vocab=32000, heads=32, kv_heads=32),
    "Llama-3-8B": dict(layers=32, hidden=4096, ffn=14336, vocab=128256, heads=32, kv_heads=8),
}
SEQ = 2048                    # data.max_seq_len of the recipes
ROWS_PER_MICRO = 2            # training.batch_size
MICRO_PER_STEP = 8            # training.gradient_accumulation_steps
LORA_RANK = 8
LORA_TARGETS = ["q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
GRAD_BYTES = 4                # Agora reduces fp32 gradients (the fp32 sums its AdamW keeps for bf16 weights)


def shapes(m):
    d, kv = m["hidden"], m["hidden"] // m["heads"] * m["kv_heads"]
    return {"q_proj": (d, d), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (d, d),
            "gate_proj": (d, m["ffn"]), "up_proj": (d, m["ffn"]), "down_proj": (m["ffn"], d)}


def parameters(m):
    per_layer = sum(i * o for i, o in shapes(m).values()) + 2 * m["hidden"]
    return m["layers"] * per_layer + 2 * m["vocab"] * m["hidden"] + m["hidden"]


def lora_parameters(m):
    return m["layers"] * sum(LORA_RANK * (i + o) for name, (i, o) in shapes(m).items() if name in LORA_TARGETS)


def step_flops(m, lora):
    """FLOPs of one rank's optimizer step: matmuls 2P per token forward, 2P backward for activations, 2P backward
    for weights (absent for frozen weights: LoRA); causal attention 2*S*d*L per token forward, twice that back."""
    tokens = SEQ * ROWS_PER_MICRO * MICRO_PER_STEP
    matmul_params = parameters(m) - m["vocab"] * m["hidden"]  # the embedding is a lookup
    per_token = (4 if lora else 6) * matmul_params + 3 * 2 * SEQ * m["hidden"] * m["layers"]
    return per_token * tokens


def allreduce_seconds(size_bytes, gpus, a):
    """NCCL all-reduce of one bucket: the better of a ring (bandwidth-optimal, latency grows with the ranks) and a
    double binary tree (latency grows with log2 of the ranks), as NCCL itself picks by size and scale."""
    if gpus == 1:
        return a.launch_us * 1e-6
    intra = gpus <= a.gpus_per_node
    busbw = (a.nvlink_busbw if intra else min(a.nvlink_busbw, a.nics_per_node * a.nic_gbps * a.nic_efficiency)) * 1e9
    hop = (a.hop_us_intra if intra else a.hop_us_inter) * 1e-6
    bandwidth = 2 * (gpus - 1) / gpus * size_bytes / busbw
    ring = 2 * (gpus - 1) * hop + bandwidth
    tree = 2 * math.ceil(math.log2(gpus)) * hop + bandwidth / a.tree_bandwidth_fraction
    return a.launch_us * 1e-6 + min(ring, tree)


def predict(name, lora, gpus, a):
    m = MODELS[name]
    compute = step_flops(m, lora) / (a.peak_tflops * 1e12 * a.mfu)
    grad_bytes = (lora_parameters(m) if lora else parameters(m)) * GRAD_BYTES
    bucket = a.bucket_mb * 1024 * 1024
    buckets = max(1, math.ceil(grad_bytes / bucket))
    last = grad_bytes - (buckets - 1) * bucket
    comm = (buckets - 1) * allreduce_seconds(bucket, gpus, a) + allreduce_seconds(last, gpus, a)
    # Reduction runs only in the last micro-batch's backward (no all-reduce on accumulation micro-steps). Buckets
    # start as the backward produces them, so the window is that backward (2/3 of a full micro-batch's FLOPs,
    # 1/2 of LoRA's); the last bucket is produced at the very end and cannot be hidden.
    backward_window = compute / MICRO_PER_STEP * (0.5 if lora else 2 / 3)
    tail = allreduce_seconds(last, gpus, a)
    exposed = max(tail, comm - backward_window) if gpus > 1 else 0.0
    # NCCL kernels share the GPU with the backward: the overlapped part slows compute a little.
    interference = a.overlap_slowdown * min(comm, backward_window) if gpus > 1 else 0.0
    step = compute + interference + exposed
    return dict(model=name, mode="LoRA" if lora else "full", gpus=gpus, trainable=lora_parameters(m) if lora
                else parameters(m), grad_gb=grad_bytes / 1e9, buckets=buckets, compute_s=compute,
                allreduce_s=comm, window_s=backward_window, exposed_s=exposed, step_s=step,
                efficiency=compute / step)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak per GPU (H100 SXM)")
    p.add_argument("--mfu", type=float, default=0.40, help="assumed model-FLOPs utilisation of one rank")
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.add_argument("--nvlink-busbw", type=float, default=360.0, help="GB/s NCCL all-reduce bus bandwidth in a node")
    p.add_argument("--nic-gbps", type=float, default=50.0, help="GB/s per NIC (400 Gb/s)")
    p.add_argument("--nics-per-node", type=int, default=8)
    p.add_argument("--nic-efficiency", type=float, default=0.8, help="fraction of NIC bandwidth NCCL reaches")
    p.add_argument("--hop-us-intra", type=float, default=2.0, help="µs per ring step inside a node")
    p.add_argument("--hop-us-inter", type=float, default=8.0, help="µs per ring step across nodes")
    p.add_argument("--tree-bandwidth-fraction", type=float, default=0.8, help="tree busbw / ring busbw")
    p.add_argument("--launch-us", type=float, default=20.0, help="fixed cost per collective (world size 1)")
    p.add_argument("--overlap-slowdown", type=float, default=0.1, help="compute lost while NCCL runs alongside")
    p.add_argument("--bucket-mb", type=float, default=25.0)
    p.add_argument("--json", default="", help="write the rows here")
    a = p.parse_args()

    rows = [predict(name, lora, gpus, a) for name in MODELS for lora in (False, True) for gpus in (8, 64, 512)]
    print(f"{'model':<11} {'mode':<5} {'GPUs':>5} {'grad GB':>8} {'buckets':>7} {'compute s':>9} {'all-red s':>9} "
          f"{'window s':>8} {'exposed s':>9} {'step s':>7} {'eff':>6}")
    for r in rows:
        print(f"{r['model']:<11} {r['mode']:<5} {r['gpus']:>5} {r['grad_gb']:>8.3f} {r['buckets']:>7} "
              f"{r['compute_s']:>9.3f} {r['allreduce_s']:>9.4f} {r['window_s']:>8.3f} {r['exposed_s']:>9.4f} "
              f"{r['step_s']:>7.3f} {r['efficiency']:>6.1%}")
    head = {g: next(r for r in rows if r["model"] == "Llama-3-8B" and r["mode"] == "full" and r["gpus"] == g)
            for g in (8, 64)}
    print(f"predicted scaling efficiency, Llama-3-8B full fine-tuning: {head[8]['efficiency']:.1%} at 8 GPUs, "
          f"{head[64]['efficiency']:.1%} at 64 GPUs")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"assumptions": vars(a), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
