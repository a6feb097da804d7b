"""Oracle for the generation engine's tests: transformers' greedy `generate` (CPU, fp32) on the llama3_gqa model
of make_model_fixtures.py, one prompt at a time, for prompts of many lengths (several sharing a long prefix, as a
simulation's requests do), and with the repetition penalty and the n-gram ban that the engine also implements.

usage: make_engine_fixtures.py MODELS_DIR OUT_JSON
"""
import json
import sys

import torch
from transformers import LlamaForCausalLM

MAX_NEW_TOKENS = 20


def main():
    models_dir, out_json = sys.argv[1], sys.argv[2]
    model = LlamaForCausalLM.from_pretrained(f"{models_dir}/llama3_gqa", dtype=torch.float32).eval()
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(19)
    shared = [1] + torch.randint(3, vocab, (40,), generator=generator).tolist()
    prompts = [shared + torch.randint(3, vocab, (n,), generator=generator).tolist() for n in (1, 4, 9, 17)]
    prompts += [[1] + torch.randint(3, vocab, (n,), generator=generator).tolist() for n in (1, 3, 8, 25, 50, 70)]

    def greedy(prompt, **processors):
        ids = torch.tensor([prompt])
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=MAX_NEW_TOKENS, eos_token_id=2, pad_token_id=0, **processors)
        return out[0, len(prompt):].tolist()

    cases = [{"prompt": p, "continuation": greedy(p)} for p in prompts]
    for p in prompts[:3]:
        cases.append({"prompt": p, "repetition_penalty": 1.5, "continuation": greedy(p, repetition_penalty=1.5)})
        cases.append({"prompt": p, "no_repeat_ngram_size": 2, "continuation": greedy(p, no_repeat_ngram_size=2)})
    with open(out_json, "w") as f:
        json.dump({"model": "llama3_gqa", "max_new_tokens": MAX_NEW_TOKENS, "stop_ids": [2], "cases": cases}, f)
    print(f"{len(cases)} cases, continuation lengths {[len(c['continuation']) for c in cases]}")


if __name__ == "__main__":
    main()
