"""Writes what torch.optim.AdamW does, for tests/trainer_test.cpp to compare Agora's AdamW against.

Usage: python make_optimizer_fixtures.py OUT_DIR

OUT_DIR/adamw.safetensors holds, for three random fp32 parameters (one of them without weight decay, as Agora
treats norms), over STEPS updates with a changing learning rate and random gradients:
  "<name>"                      the initial value
  "grad.<k>.<name>"             the gradient of update k
  "param.<k>.<name>"            the value torch.optim.AdamW leaves after update k
  "exp_avg.<name>", "exp_avg_sq.<name>"   its moments after the last update
  "lr"                          [STEPS] float64 learning rates
  "grad_norm"                   [STEPS] float64, torch.nn.utils.get_total_norm of each update's gradients
Hyperparameters: betas (0.9, 0.95), eps 1e-8, weight_decay 0.1 (same constants in the C++ test).
"""

import os
import sys

import torch
from safetensors.torch import save_file

STEPS = 5
NAMES = {"model.layers.0.mlp.up_proj.weight": (24, 16), "model.norm.weight": (16,), "lm_head.weight": (40, 16)}
NO_DECAY = {"model.norm.weight"}


def main(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(1234)
    params = {n: torch.randn(shape, generator=gen, dtype=torch.float32) for n, shape in NAMES.items()}
    out = {n: p.clone() for n, p in params.items()}
    live = {n: p.clone().requires_grad_(True) for n, p in params.items()}
    groups = [
        {"params": [live[n] for n in NAMES if n not in NO_DECAY], "weight_decay": 0.1},
        {"params": [live[n] for n in NAMES if n in NO_DECAY], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=1.0, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    lrs = torch.tensor([3e-3, 1e-2, 7e-3, 2e-3, 5e-4], dtype=torch.float64)
    norms = []
    for k in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = float(lrs[k])
        for n, p in live.items():
            grad = torch.randn(p.shape, generator=gen, dtype=torch.float32) * (0.1 + k)
            p.grad = grad.clone()
            out[f"grad.{k}.{n}"] = grad
        norms.append(float(torch.nn.utils.get_total_norm([p.grad for p in live.values()], norm_type=2.0)))
        opt.step()
        for n, p in live.items():
            out[f"param.{k}.{n}"] = p.detach().clone()
    for n, p in live.items():
        state = opt.state[p]
        out[f"exp_avg.{n}"] = state["exp_avg"].clone()
        out[f"exp_avg_sq.{n}"] = state["exp_avg_sq"].clone()
    out["lr"] = lrs
    out["grad_norm"] = torch.tensor(norms, dtype=torch.float64)
    save_file(out, os.path.join(out_dir, "adamw.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1])
