"""Oracle for Agora's model parity tests: transformers (CPU, fp32) builds tiny random Llama checkpoints of three
shapes and records what it computes on them.

usage: make_model_fixtures.py OUT_DIR TOKENIZER_MODEL

For each model NAME it writes
  OUT_DIR/NAME/                       an HF model folder written by save_pretrained (tokenizer.model included)
  OUT_DIR/NAME_reference.safetensors  input_ids, labels, logits_fp32, logits_bf16, logits_fp16, loss
  OUT_DIR/NAME_generation.json        prompts (token ids) and transformers' greedy continuations
"""
import json
import os
import shutil
import sys

import sentencepiece as spm
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM


def shapes(vocab_size):
    common = dict(vocab_size=vocab_size, bos_token_id=1, eos_token_id=2, max_position_embeddings=256)
    return {
        # Llama-2 style: multi-head attention, default rope, fp32 weights, sharded by save_pretrained.
        "llama2_mha": (dict(common, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=4, rms_norm_eps=1e-6, rope_theta=10000.0),
                       torch.float32, "60KB"),
        # Llama-3 style: grouped-query attention and llama3 rope scaling (a short original context so that the
        # scaled, smoothed and kept frequency bands all occur), stored in bf16.
        "llama3_gqa": (dict(common, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                            num_attention_heads=8, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=500000.0,
                            rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                              high_freq_factor=4.0, original_max_position_embeddings=32)),
                       torch.bfloat16, None),
        # Tied embeddings and head_dim != hidden_size / heads (4 x 24 = 96 != 64), stored in fp16.
        "tied_headdim": (dict(common, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=24, rms_norm_eps=1e-6,
                              rope_theta=10000.0, tie_word_embeddings=True),
                         torch.float16, None),
    }


def randomize(model, generator):
    """Weights of realistic scale (not the 0.02 init, whose logits are all near-ties); norms around 1."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(torch.rand(p.shape, generator=generator) + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=generator) / p.shape[-1] ** 0.5)


def main():
    out_dir, tokenizer_model = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    vocab_size = spm.SentencePieceProcessor(model_file=tokenizer_model).vocab_size()
    generator = torch.Generator().manual_seed(1234)
    for name, (kwargs, save_dtype, shard_size) in shapes(vocab_size).items():
        config = LlamaConfig(**kwargs)
        model = LlamaForCausalLM(config).to(save_dtype).eval()
        randomize(model, generator)
        folder = os.path.join(out_dir, name)
        model.save_pretrained(folder, **({"max_shard_size": shard_size} if shard_size else {}))
        shutil.copy(tokenizer_model, os.path.join(folder, "tokenizer.model"))
        # The references are what transformers computes on the saved checkpoint, loaded as a user loads it.
        model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        model_bf16 = LlamaForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).eval()
        model_fp16 = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float16).eval()

        input_ids = torch.randint(3, vocab_size, (2, 24), generator=generator)
        labels = input_ids.clone()
        labels[0, :5] = -100  # an untrained prompt
        labels[1, 17:] = -100  # and padding at the end
        with torch.no_grad():
            out = model(input_ids=input_ids, labels=labels)
            logits_bf16 = model_bf16(input_ids=input_ids).logits.float()
            logits_fp16 = model_fp16(input_ids=input_ids).logits.float()
        save_file({"input_ids": input_ids, "labels": labels, "logits_fp32": out.logits.contiguous(),
                   "logits_bf16": logits_bf16.contiguous(), "logits_fp16": logits_fp16.contiguous(), "loss": out.loss.reshape(1)},
                  os.path.join(out_dir, f"{name}_reference.safetensors"))

        prompts = [[1] + torch.randint(3, vocab_size, (n,), generator=generator).tolist() for n in (4, 11, 7)]
        continuations = []
        with torch.no_grad():
            for prompt in prompts:
                ids = torch.tensor([prompt])
                out_ids = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                         max_new_tokens=32, eos_token_id=2, pad_token_id=0)
                continuations.append(out_ids[0, len(prompt):].tolist())
        with open(os.path.join(out_dir, f"{name}_generation.json"), "w") as f:
            json.dump({"prompts": prompts, "continuations": continuations, "max_new_tokens": 32,
                       "stop_ids": [2]}, f)
        print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, loss {out.loss.item():.6f}, "
              f"continuation lengths {[len(c) for c in continuations]}")


if __name__ == "__main__":
    main()
