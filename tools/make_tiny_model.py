"""Writes assets/tiny-llama: the embedded demo model, a Llama-3-shaped model (grouped-query attention, llama3
rope scaling) of random parameters in bf16, with the Llama-2-style sentencepiece BPE tokenizer that
tests/oracle/make_tokenizer_fixtures.py trains deterministically. Rerun only to change the demo model; its output
is committed.

usage: python tools/make_tiny_model.py   (with the venv of tools/bootstrap.sh)
"""
import os
import shutil
import subprocess
import sys
import tempfile

import sentencepiece as spm
import torch
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "assets", "tiny-llama")


def main():
    fixtures = tempfile.mkdtemp()
    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "oracle", "make_tokenizer_fixtures.py"), fixtures],
                   check=True, stdout=subprocess.DEVNULL)
    tokenizer = os.path.join(fixtures, "tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=tokenizer)
    config = LlamaConfig(vocab_size=sp.vocab_size(), hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         rms_norm_eps=1e-5, rope_theta=500000.0, bos_token_id=sp.bos_id(),
                         eos_token_id=sp.eos_id(),
                         rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                           high_freq_factor=4.0, original_max_position_embeddings=128))
    torch.manual_seed(0)
    config.initializer_range = 0.2  # larger than the usual 0.02 so that sampling is not uniform noise
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(OUT)
    shutil.copy(tokenizer, os.path.join(OUT, "tokenizer.model"))
    shutil.rmtree(fixtures)
    print(f"wrote {OUT}: {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
