"""Throughput of a sandbox round (`agora simulate`, method sandbox): a grid x grid society drafting, rating (1..7,
constrained), giving reasons, revising, and observed (alignment and engagement, before and after): 18 requests per
agent with 4 interactees. The same round twice in one run on the same weights: the engine decoding up to 64
sequences together with its prefix cache (what agora simulate does), and one request at a time with no prefix
cache (what the seeds' loops of one API call per prompt amount to on local weights). The engine beside HF
transformers' generate is benchmarks/generate/generate_bench.py.

Figures from the simulation's own summary.json (the round's time, without process start or model load):
questions/s, tokens/s (prompt tokens computed + generated, per second) and generated tokens/s.

usage: python benchmarks/simulate/sandbox_round_bench.py [--agora build/agora] [--shape tiny|small-cpu | --model DIR]
           [--device cpu|cuda] [--modes batched,one_at_a_time] [--grid 6] [--max_new_tokens 48]
           [--json benchmarks/results/simulate_sandbox_cpu.json] [--commit SHA]
The last line of the table is the headline: batched questions/s over one-at-a-time questions/s (with both modes).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def simulate(agora, model, out, grid, max_new_tokens, batched, device):
    cmd = [agora, "simulate", "--config", "recipes/closed_loop_sandbox_tiny.yaml", "closed_loop.rounds=0",
           f"model.path={model}", f"output_dir={out}", f"simulate.sandbox.grid={grid}", "simulate.sandbox.rounds=1",
           f"simulate.max_questions={grid * grid}", "simulate.sandbox.interactees=4",
           f"simulate.max_new_tokens={max_new_tokens}", f"device={device}",
           f"simulate.max_sequences={64 if batched else 1}",
           f"simulate.prefix_cache_blocks={4096 if batched else 0}"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(p.stderr)
    return json.load(open(os.path.join(out, "summary.json")))["throughput"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agora", default=os.path.join(ROOT, "build", "agora"))
    parser.add_argument("--shape", default="tiny", help="tiny (assets/tiny-llama) or a tools/make_random_llama shape")
    parser.add_argument("--model", help="an HF model folder (instead of --shape)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", default="batched,one_at_a_time")
    parser.add_argument("--grid", type=int, default=6)
    parser.add_argument("--max_new_tokens", type=int, default=48)
    parser.add_argument("--json")
    parser.add_argument("--commit", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or os.path.join(ROOT, "assets", "tiny-llama")
        if args.shape != "tiny" and not args.model:
            model = os.path.join(tmp, "model")
            subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_random_llama.py"), "--shape", args.shape,
                            "--dtype", "float32", model], check=True, capture_output=True)
        rows = {mode: simulate(args.agora, model, os.path.join(tmp, mode), args.grid, args.max_new_tokens,
                               mode == "batched", args.device) for mode in args.modes.split(",")}
    name = args.model or args.shape
    print(f"sandbox round: {args.grid}x{args.grid} agents, {name}, {args.max_new_tokens} new tokens at most, "
          f"{args.device}")
    print(f"{'mode':<16}{'questions/s':>12}{'tokens/s':>12}{'gen tok/s':>11}{'requests':>10}{'cache hit':>10}")
    for mode, r in rows.items():
        print(f"{mode:<16}{r['questions_per_s']:>12.2f}{r['tokens_per_s']:>12.0f}{r['generated_tokens_per_s']:>11.0f}"
              f"{r['requests']:>10}{100 * r['prefix_cache_hit_rate']:>9.0f}%")
    ratio = None
    if len(rows) == 2:
        ratio = rows["batched"]["questions_per_s"] / rows["one_at_a_time"]["questions_per_s"]
        print(f"headline: batched / one at a time, questions/s: {ratio:.2f}x")
    else:
        mode, r = next(iter(rows.items()))
        print(f"headline: {mode}, {r['questions_per_s']:.2f} questions/s, {r['generated_tokens_per_s']:.0f} generated tok/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "sandbox_round", "date": datetime.date.today().isoformat(),
                       "machine": f"{platform.machine()}, {os.cpu_count()} cores", "device": args.device,
                       "commit": args.commit, "model": name, "grid": args.grid, "max_new_tokens": args.max_new_tokens,
                       "results": rows, "headline_batched_over_one_at_a_time": ratio}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
