"""`agora generate` on a folder transformers wrote must print what transformers + sentencepiece produce.

usage: check_cli_generate.py AGORA_BINARY MODEL_DIR
"""
import os
import subprocess
import sys

import sentencepiece as spm
import torch
from transformers import LlamaForCausalLM

PROMPTS = ["hello world", "the quick brown fox 123"]
MAX_NEW_TOKENS = 16


def agora_matches(agora, model_dir, prompt, expected):
    """Runs `agora generate` greedily in fp32 on the CPU for `prompt`; True when it prints `expected`. Prints both."""
    run = subprocess.run([agora, "generate", "--model", model_dir, "--prompt", prompt, "--device", "cpu",
                          "--dtype", "float32", "--max-new-tokens", str(MAX_NEW_TOKENS)],
                         capture_output=True, text=True, encoding="utf-8", errors="backslashreplace")
    got = run.stdout.rstrip("\n")
    ok = run.returncode == 0 and got == expected
    print(f"{'ok  ' if ok else 'FAIL'} prompt {prompt!r}\n  transformers: {expected!r}\n  agora:        {got!r}")
    if run.returncode != 0:
        print(run.stderr)
    return ok


def report(failures, total):
    print(f"{total - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


def main():
    agora, model_dir = sys.argv[1], sys.argv[2]
    sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    failures = 0
    for prompt in PROMPTS:
        ids = [sp.bos_id()] + sp.encode(prompt)
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 do_sample=False, max_new_tokens=MAX_NEW_TOKENS, eos_token_id=sp.eos_id(),
                                 pad_token_id=0)
        failures += not agora_matches(agora, model_dir, prompt, sp.decode(out[0].tolist()))
    report(failures, len(PROMPTS))


if __name__ == "__main__":
    main()
