"""Generation throughput of Agora's engine (`agora generate --requests`) and of HF transformers' `generate`, side
by side in one run on the same random weights (one HF folder both load), greedy, fp32 on the CPU (bf16 on CUDA).

Workloads (prompt tokens are random ids; every request generates exactly its max_new_tokens: EOS is banned in
both frameworks):
  (a) batch 1, 16 and 64 requests x prompt 512 x 128 new tokens; HF decodes each batch as one generate call.
  (b) the simulation workload: 256 requests sharing a 1,024-token prefix with different 64-token suffixes,
      64 new tokens each; HF in batches of 16 (what a user of generate would write).
Agora gets every request of a workload at once (--max_sequences 64), with its prefix cache on.

Times: HF from the first to the last generate call (after one warm-up call), Agora the engine's own run (the
`in X s` of its last progress line: no process start or model load). tokens/s = generated tokens / time.
Per token the model costs 2 P FLOPs (P: matmul parameters of the layers; prefill only needs the last position's
logits) plus attention; the table reports the work each framework actually did as prompt tokens computed.

usage: python benchmarks/generate/generate_bench.py [--agora build/agora] [--shape small-cpu] [--device cpu]
           [--workloads a1,a16,a64,b] [--json benchmarks/results/generate_cpu.json] [--commit SHA]
The last line of the table is the headline: Agora's tokens/s over HF's on (b).
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))

WORKLOADS = {  # name: (requests, shared prefix, own prompt tokens, new tokens, HF batch)
    "a1": (1, 0, 512, 128, 1),
    "a16": (16, 0, 512, 128, 16),
    "a64": (64, 0, 512, 128, 64),
    "b": (256, 1024, 64, 64, 16),
}


def prompts_of(name, vocab, seed=0):
    import torch
    count, shared, own, _, _ = WORKLOADS[name]
    g = torch.Generator().manual_seed(seed)
    prefix = [1] + torch.randint(3, vocab, (shared,), generator=g).tolist() if shared else [1]
    return [prefix + torch.randint(3, vocab, (own,), generator=g).tolist() for _ in range(count)]


def run_agora(agora, model_dir, name, prompts, device, workdir):
    new_tokens = WORKLOADS[name][3]
    requests, out = os.path.join(workdir, f"{name}.jsonl"), os.path.join(workdir, f"{name}_out.jsonl")
    with open(requests, "w") as f:
        for i, p in enumerate(prompts):
            f.write(json.dumps({"id": i, "prompt_ids": p, "max_new_tokens": new_tokens, "logit_bias": {"2": -1e9}})
                    + "\n")
    if os.path.exists(out):
        os.remove(out)
    run = subprocess.run([agora, "generate", "--model", model_dir, "--requests", requests, "--out", out,
                          "--device", device, "--dtype", "float32" if device == "cpu" else "bfloat16",
                          "--max_sequences", "64"], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"agora generate failed:\n{run.stderr}")
    last = run.stderr.strip().splitlines()[-1]
    seconds = float(re.search(r"in ([0-9.]+) s", last).group(1))
    tokens = sum(len(json.loads(line)["tokens"]) for line in open(out))
    cached = float(re.search(r"prefix cache ([0-9]+)%", last).group(1)) / 100
    prompt_tokens = sum(len(p) for p in prompts)
    return {"seconds": seconds, "generated_tokens": tokens, "prompt_tokens_computed": round(prompt_tokens * (1 - cached)),
            "progress": last}


def run_hf(model_dir, name, prompts, device):
    import torch
    import transformers
    from transformers import LlamaForCausalLM
    transformers.utils.logging.disable_progress_bar()
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    _, _, _, new_tokens, batch = WORKLOADS[name]

    def generate(rows):
        ids = torch.tensor(rows, device=device)
        with torch.inference_mode():
            return model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=new_tokens,
                                  min_new_tokens=new_tokens, pad_token_id=0)

    generate(prompts[:1])  # warm-up
    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    tokens = 0
    for i in range(0, len(prompts), batch):
        out = generate(prompts[i:i + batch])
        tokens += out.shape[0] * (out.shape[1] - len(prompts[i]))
    if device != "cpu":
        torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - start, "generated_tokens": tokens,
            "prompt_tokens_computed": sum(len(p) for p in prompts)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agora", default=os.path.join(ROOT, "build", "agora"))
    parser.add_argument("--shape", default="small-cpu")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workloads", default="a1,a16,a64,b")
    parser.add_argument("--json")
    parser.add_argument("--commit", default="")
    args = parser.parse_args()
    import torch
    import transformers
    from make_random_llama import make_model

    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        model_dir = os.path.join(workdir, "model")
        make_model(args.shape, dtype=torch.float32, eos_token_id=2, bos_token_id=1).save_pretrained(model_dir)
        subprocess.run(["cp", os.path.join(ROOT, "assets", "tiny-llama", "tokenizer.model"), model_dir], check=True)
        vocab = json.load(open(os.path.join(model_dir, "config.json")))["vocab_size"]
        for name in args.workloads.split(","):
            prompts = prompts_of(name, vocab)
            agora = run_agora(args.agora, model_dir, name, prompts, args.device, workdir)
            hf = run_hf(model_dir, name, prompts, args.device)
            row = {"workload": name, "requests": len(prompts), "prompt_tokens": len(prompts[0]),
                   "new_tokens": WORKLOADS[name][3], "agora": agora, "hf": hf}
            for who in ("agora", "hf"):
                row[who]["tokens_per_s"] = row[who]["generated_tokens"] / row[who]["seconds"]
            row["ratio"] = agora["tokens_per_s"] / hf["tokens_per_s"]
            rows.append(row)
            print(f"{name}: agora {agora['tokens_per_s']:.1f} tok/s, hf {hf['tokens_per_s']:.1f} tok/s", flush=True)

    print(f"\n{'workload':<10}{'requests':>9}{'prompt':>8}{'new':>5}{'agora tok/s':>13}{'hf tok/s':>10}"
          f"{'agora prompt tok':>18}{'hf prompt tok':>15}{'agora/hf':>10}")
    for r in rows:
        print(f"{r['workload']:<10}{r['requests']:>9}{r['prompt_tokens']:>8}{r['new_tokens']:>5}"
              f"{r['agora']['tokens_per_s']:>13.1f}{r['hf']['tokens_per_s']:>10.1f}"
              f"{r['agora']['prompt_tokens_computed']:>18}{r['hf']['prompt_tokens_computed']:>15}{r['ratio']:>10.2f}")
    headline = next((r["ratio"] for r in rows if r["workload"] == "b"), None)
    if headline is not None:
        print(f"headline (b, the simulation workload): Agora / HF generated tokens/s = {headline:.2f}x")
    if args.json:
        record = {"benchmark": "generate", "date": datetime.date.today().isoformat(), "commit": args.commit,
                  "device": args.device, "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                  "torch": torch.__version__, "transformers": transformers.__version__, "shape": args.shape,
                  "rows": rows, "headline": headline}
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()
