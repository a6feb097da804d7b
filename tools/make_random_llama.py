"""Writes a Hugging Face Llama folder of random weights in a real model's shape (config.json, safetensors,
tokenizer.model), for measuring training at realistic sizes where no weights can be downloaded (the GPU machine
has no network). The weights are transformers' own initialisation under a fixed seed; the tokenizer is a small
sentencepiece model (its ids are a subset of the shape's vocabulary), so `agora train` runs on real text.

usage: python tools/make_random_llama.py --shape llama-3.2-1b [--device cuda] [--dtype bfloat16]
           [--tokenizer assets/tiny-llama/tokenizer.model] OUT
"""
import argparse
import os
import shutil

import torch
from transformers import LlamaConfig, LlamaForCausalLM

# The published shapes (their config.json files), without the weights.
SHAPES = {
    "llama-3.2-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=64, vocab_size=128256, tie_word_embeddings=True,
                         max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=500000.0,
                         rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                           original_max_position_embeddings=8192)),
    "llama-3-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False,
                       max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=500000.0),
    "llama-2-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=32, vocab_size=32000, tie_word_embeddings=False,
                       max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0),
    # Not a published model: Llama's proportions at a size a 2-core CPU trains in about a second a step
    # (benchmarks/train_step on the CPU).
    "small-cpu": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
                      num_key_value_heads=4, head_dim=32, vocab_size=32000, tie_word_embeddings=False,
                      max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0),
}


def make_model(shape, device="cpu", dtype=torch.bfloat16, seed=0, **overrides):
    """A LlamaForCausalLM of `shape` (a SHAPES key) with transformers' random initialisation, built directly on
    `device` in `dtype` (creating 8B parameters in fp32 on the CPU first would take minutes)."""
    config = LlamaConfig(**{**SHAPES[shape], **overrides})
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--shape", required=True, choices=sorted(SHAPES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--tokenizer", default=os.path.join(os.path.dirname(__file__), "..", "assets", "tiny-llama",
                                                            "tokenizer.model"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    # The demo tokenizer's special ids (sentencepiece: <s> = 1, </s> = 2), so generation stops where training taught.
    model = make_model(args.shape, args.device, getattr(torch, args.dtype), args.seed, bos_token_id=1, eos_token_id=2)
    model.save_pretrained(args.out)
    shutil.copy(args.tokenizer, os.path.join(args.out, "tokenizer.model"))
    print(f"wrote {args.out}: {args.shape}, {sum(p.numel() for p in model.parameters()) / 1e9:.3f}B parameters, "
          f"{args.dtype}")


if __name__ == "__main__":
    main()
