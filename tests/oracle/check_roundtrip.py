"""Checkpoints Agora wrote must load in transformers and give the oracle's logits.

usage: check_roundtrip.py ROUNDTRIP_DIR ORACLE_MODELS_DIR
Every folder in ROUNDTRIP_DIR is a model Agora re-saved from ORACLE_MODELS_DIR/<same name>.
"""
import os
import sys

import torch
from safetensors.torch import load_file
from transformers import LlamaForCausalLM


def main():
    roundtrip_dir, oracle_dir = sys.argv[1], sys.argv[2]
    names = sorted(d for d in os.listdir(roundtrip_dir) if os.path.isdir(os.path.join(roundtrip_dir, d)))
    if not names:
        sys.exit(f"no checkpoints in {roundtrip_dir}")
    failures = 0
    for name in names:
        folder = os.path.join(roundtrip_dir, name)
        reference = load_file(os.path.join(oracle_dir, f"{name.split('.')[0]}_reference.safetensors"))
        model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        with torch.no_grad():
            logits = model(input_ids=reference["input_ids"]).logits.double()
        expected = reference["logits_fp32"].double()
        error = ((logits - expected).abs().max() / expected.abs().max()).item()
        ok = error <= 1e-5
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name} ({sorted(os.listdir(folder))}): relative error {error:.3g}")
    print(f"{len(names) - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
