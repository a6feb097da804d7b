"""A QLoRA run's adapter is an ordinary PEFT adapter: `agora train` with lora.quantize_base=nf4 on the embedded tiny
model, then PEFT loads the checkpoint over the original (unquantised) weights, as bitsandbytes + PEFT users serve
it: every adapter tensor arrives bit for bit, the adapted model's logits differ from the base's, and the run's log
states the quantised storage. `agora generate --quantize_base nf4` then answers with the adapter over an NF4 base.

Usage: python check_qlora_peft.py AGORA_BINARY SOURCE_DIR WORK_DIR
"""

import os
import subprocess
import sys

import torch
from peft import PeftModel, get_peft_model_state_dict
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from train_runs import log_text, run_dir, run_expecting


def main(agora, source, work):
    out = run_dir(work, "qlora_run")
    run_expecting([agora, "train", f"--config={source}/recipes/tiny_demo.yaml", f"output_dir={out}", "device=cpu",
                   "lora.quantize_base=nf4", "training.max_steps=8", "checkpoint.every_steps=8", "eval.every_steps=8",
                   "logging.tensorboard=false"], source, dict(os.environ, OMP_NUM_THREADS="1"), 300, 0)
    log = log_text(out)
    if "stored nf4, 0.517 bytes each" not in log:
        sys.exit(f"the log does not state the quantised storage:\n{log}")
    adapter = os.path.join(out, "checkpoints", "step_0000008")

    tiny = os.path.join(source, "assets", "tiny-llama")
    base = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32).eval()
    ids = torch.randint(800, (2, 20), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        base_logits = base(ids).logits
    model = PeftModel.from_pretrained(base, adapter).eval()
    stored = load_file(os.path.join(adapter, "adapter_model.safetensors"))
    loaded = get_peft_model_state_dict(model)
    if set(stored) != set(loaded):
        sys.exit(f"PEFT's adapter keys differ from the file's: {sorted(set(stored) ^ set(loaded))[:8]}")
    for name, tensor in stored.items():
        if not torch.equal(tensor, loaded[name].to(tensor.dtype)):
            sys.exit(f"{name}: PEFT holds other values than the file")
    with torch.no_grad():
        adapted = model(ids).logits
    change = ((adapted - base_logits).abs().max() / base_logits.abs().max()).item()
    if not change > 1e-4:
        sys.exit(f"the adapter changes the logits by {change:.2e} only: was it loaded?")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    gen = subprocess.run([agora, "generate", "--model", tiny, "--adapter", adapter, "--quantize_base", "nf4",
                          "--prompt", "Hello", "--max_new_tokens", "8"], capture_output=True, text=True, env=env,
                         timeout=120)
    if gen.returncode != 0 or not gen.stdout.strip():
        sys.exit(f"agora generate --quantize_base nf4 failed ({gen.returncode}):\n{gen.stdout}{gen.stderr}")
    bad = subprocess.run([agora, "generate", "--model", tiny, "--quantize_base", "nf5", "--prompt", "Hello"],
                         capture_output=True, text=True, env=env, timeout=60)
    if bad.returncode != 1 or "--quantize_base: expected none, nf4 or int8, got 'nf5'" not in bad.stderr:
        sys.exit(f"--quantize_base nf5 was not refused clearly ({bad.returncode}):\n{bad.stderr}")
    print(f"PEFT loaded the QLoRA adapter over the bf16 base: {len(stored)} tensors bit for bit, logits moved "
          f"{change:.3g} (relative) from the base's; agora generate answered over an NF4 base")


if __name__ == "__main__":
    main(*sys.argv[1:4])
