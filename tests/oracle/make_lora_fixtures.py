"""Writes PEFT-made LoRA adapters and PEFT's logits with them, for tests/lora_test.cpp to import and compare.

Usage: python make_lora_fixtures.py OUT_DIR BASE_MODEL_DIR

On the base model (an fp32 transformers folder from make_model_fixtures.py), PEFT 0.21 creates two adapters with
random A and B (init_lora_weights=False, so B is not zero and the adapter changes the output) and saves them with
save_pretrained:
  OUT_DIR/peft_all/      r=4, lora_alpha=8, every projection (q,k,v,o,gate,up,down)
  OUT_DIR/peft_rslora/   r=2, lora_alpha=6, use_rslora (scaling alpha/sqrt(r)), q_proj and v_proj, lora_dropout 0.1
OUT_DIR/peft_logits.safetensors: "input_ids" [2, 11] and, per adapter, the PeftModel's fp32 logits in eval mode
("logits_peft_all", "logits_peft_rslora"), plus the base model's ("logits_base").
"""

import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

ADAPTERS = {
    "peft_all": dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                        "up_proj", "down_proj"]),
    "peft_rslora": dict(r=2, lora_alpha=6, use_rslora=True, lora_dropout=0.1, target_modules=["q_proj", "v_proj"]),
}


def base_model(path):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def main(out_dir, base_dir):
    os.makedirs(out_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(7)
    base = base_model(base_dir)
    input_ids = torch.randint(3, base.config.vocab_size, (2, 11), generator=gen)
    out = {"input_ids": input_ids}
    with torch.no_grad():
        out["logits_base"] = base(input_ids).logits.float().contiguous()
    for name, settings in ADAPTERS.items():
        torch.manual_seed(len(name))  # PEFT draws A and B from torch's global generator
        model = get_peft_model(base_model(base_dir), LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False,
                                                                **settings)).eval()
        model.save_pretrained(os.path.join(out_dir, name))
        with torch.no_grad():
            out[f"logits_{name}"] = model(input_ids).logits.float().contiguous()
    save_file(out, os.path.join(out_dir, "peft_logits.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
