"""Checks what tests/lora_test.cpp exported: PEFT loads Agora's adapter folder and transformers loads Agora's merged
model, and both give the logits Agora computed with the adapter (fp32, relative error <= 1e-5).

Usage: python check_lora_export.py EXPORT_DIR BASE_MODEL_DIR
EXPORT_DIR holds agora_adapter/ (a PEFT adapter folder), agora_merged/ (an HF model folder) and
agora_logits.safetensors ("input_ids" as float32, "logits").
"""

import os
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

BOUND = 1e-5


def relative_error(actual, expected):
    return ((actual.double() - expected.double()).abs().max() / expected.double().abs().max()).item()


def main(export_dir, base_dir):
    ref = load_file(os.path.join(export_dir, "agora_logits.safetensors"))
    ref["input_ids"] = ref["input_ids"].long()  # stored as float32
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(base, os.path.join(export_dir, "agora_adapter")).eval()
    merged = AutoModelForCausalLM.from_pretrained(os.path.join(export_dir, "agora_merged"), dtype=torch.float32).eval()
    failed = False
    with torch.no_grad():
        for what, model in (("PEFT with Agora's adapter", peft_model), ("transformers with Agora's merged model", merged)):
            error = relative_error(model(ref["input_ids"]).logits, ref["logits"])
            print(f"{what}: logits relative error vs Agora {error:.3g} (bound {BOUND})")
            failed |= not error <= BOUND
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
