"""Byte-level BPE encoding speed: Agora's tokenizer vs the `tokenizers` library (what transformers uses), side by
side on the same text file and the same tokenizer.json, one core each.

Usage: python benchmarks/bpe_tokenizer_bench.py BENCH_BINARY TOKENIZER_JSON OUT_JSON [--mb 100]

Writes a deterministic text file of --mb megabytes (the bundled demo conversations and the Stable Alignment
question pool, lines shuffled with a fixed seed and repeated), encodes it line by line with both (each 3 times,
median; the library's encode_batch with RAYON_NUM_THREADS=1), checks that the token counts agree, prints a table
whose last line is the speed ratio, and writes OUT_JSON.
"""

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def corpus_lines():
    lines = []
    for split in ("train", "valid"):
        with open(os.path.join(ROOT, "assets", "data", "sandbox_demo", f"{split}.jsonl"), encoding="utf-8") as f:
            for record in map(json.loads, f):
                lines += [m["content"] for m in record["messages"]]
    pool = os.path.join(os.path.dirname(ROOT), "shared", "data", "stable-alignment", "question.txt")
    if os.path.exists(pool):
        with open(pool, encoding="utf-8") as f:
            lines += [line.rstrip("\n") for line in f]
    return lines


def write_text(path, megabytes):
    rng = random.Random(20260101)
    lines, size = corpus_lines(), 0
    with open(path, "w", encoding="utf-8") as f:
        while size < megabytes * 1_000_000:
            rng.shuffle(lines)
            chunk = "\n".join(lines) + "\n"
            f.write(chunk)
            size += len(chunk.encode("utf-8"))


def time_library(tokenizer_json, text):
    os.environ["RAYON_NUM_THREADS"] = "1"
    from tokenizers import Tokenizer  # imported after RAYON_NUM_THREADS is set

    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    seconds, tokens = [], 0
    for _ in range(3):
        tokenizer = Tokenizer.from_file(tokenizer_json)
        start = time.perf_counter()
        tokens = sum(len(e.ids) for e in tokenizer.encode_batch(lines, add_special_tokens=False))
        seconds.append(time.perf_counter() - start)
    return {"tokens": tokens, "seconds": seconds, "median_mb_per_s": len(text.encode()) / 1e6 / statistics.median(seconds)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bench_binary")
    parser.add_argument("tokenizer_json")
    parser.add_argument("out_json")
    parser.add_argument("--mb", type=float, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        text_path = os.path.join(tmp, "corpus.txt")
        write_text(text_path, args.mb)
        agora = json.loads(subprocess.run([args.bench_binary, args.tokenizer_json, text_path], check=True,
                                          capture_output=True, text=True).stdout)
        with open(text_path, encoding="utf-8") as f:
            library = time_library(args.tokenizer_json, f.read())
    if agora["tokens"] != library["tokens"]:
        raise SystemExit(f"token counts differ: agora {agora['tokens']}, tokenizers {library['tokens']}")
    import tokenizers

    ratio = agora["median_mb_per_s"] / library["median_mb_per_s"]
    rows = [("tokenizers " + tokenizers.__version__ + " (Rust, 1 thread)", library), ("agora BpeTokenizer (1 thread)", agora)]
    print(f"{'encoder':40s} {'MB/s':>8s} {'tokens':>12s}  ({agora['bytes'] / 1e6:.0f} MB of text)")
    for name, r in rows:
        print(f"{name:40s} {r['median_mb_per_s']:8.2f} {r['tokens']:12d}")
    print(f"agora / tokenizers speed: {ratio:.2f}x")
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = {"benchmark": "bpe_tokenizer_encode", "date": time.strftime("%Y-%m-%d"), "commit": commit,
              "machine": platform.processor()
              or platform.machine(), "cpu_count": os.cpu_count(), "tokenizer_json": os.path.basename(args.tokenizer_json),
              "text_megabytes": agora["bytes"] / 1e6, "agora": agora, "tokenizers": dict(library, version=tokenizers.__version__),
              "ratio": ratio}
    with open(args.out_json, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
