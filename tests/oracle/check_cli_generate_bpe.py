#!/usr/bin/env python3
"""`agora generate` on a folder with a byte-level BPE tokenizer.json (Llama-3 kind, no tokenizer.model) must print
what transformers produces with the fast tokenizer read from that tokenizer.json.

usage: check_cli_generate_bpe.py AGORA_BINARY MODEL_DIR

MODEL_DIR is the llama3_bpe_model folder make_bpe_fixtures.py writes. For each prompt, transformers encodes it with
the tokenizer's post-processor (so <|begin_of_text|> comes first, as Agora adds it), decodes greedily until
<|end_of_text|> or <|eot_id|>, and decodes prompt and continuation together without the special tokens; Agora's
stdout for the same prompt must be that text.
"""
import sys

import torch
from transformers import AutoTokenizer, LlamaForCausalLM
from transformers.utils import logging as transformers_logging

# The agora side (run, compare, report) is shared with the sentencepiece check.
from check_cli_generate import MAX_NEW_TOKENS, agora_matches, report

PROMPTS = ["the quick brown fox jumps over the lazy dog", "Order #42: 1,234.56 items, shipped 2024-01-31!",
           "Café naïve über straße 🦙 👩‍💻 日本語"]

def transformers_generate(tokenizer, model, prompt):
    """The token ids (prompt and continuation) and their decoded text."""
    bos, end_of_text, eot = (tokenizer.convert_tokens_to_ids(t)
                             for t in ("<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"))
    ids = tokenizer(prompt).input_ids
    assert ids[0] == bos and bos not in ids[1:], f"{prompt!r}: expected one leading <|begin_of_text|>, got {ids}"
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             do_sample=False, max_new_tokens=MAX_NEW_TOKENS, eos_token_id=[end_of_text, eot],
                             pad_token_id=end_of_text)
    ids = out[0].tolist()
    return ids, tokenizer.decode(ids, skip_special_tokens=True)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    agora, model_dir = sys.argv[1], sys.argv[2]
    transformers_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer.is_fast, "expected the fast tokenizer read from tokenizer.json"
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    failures = 0
    for prompt in PROMPTS:
        ids, expected = transformers_generate(tokenizer, model, prompt)
        if not agora_matches(agora, model_dir, prompt, expected):
            failures += 1
            print(f"  transformers ids: {ids}")
    report(failures, len(PROMPTS))


if __name__ == "__main__":
    main()
