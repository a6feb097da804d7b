"""Writes what bitsandbytes does to random weights (NF4 with double quantisation, LLM.int8() rows), for
kernels/quant/nf4_cpu_test.cpp to compare Agora's quantiser against bit for bit.

Usage: python make_nf4_fixtures.py OUT_DIR

OUT_DIR/nf4.safetensors holds, for each case <c> (a weight of some shape and dtype, with outliers, no zeros):
  "<c>.weight"              the weight (float32, bfloat16 or float16)
  "<c>.packed"              bnb.functional.quantize_4bit(w, blocksize=64, quant_type="nf4",
                            compress_statistics=True)'s packed codes [numel / 2]
  "<c>.absmax"              [numel / 64] float32: the first-level absmax (quantize_4bit without compression)
  "<c>.offset"              [1] float32: the mean subtracted before double quantisation (QuantState.offset)
  "<c>.absmax2"             [ceil(numel / 64 / 256)] float32: QuantState.state2.absmax
  "<c>.absmax_codes"        [numel / 64]: the 8-bit codes of absmax - offset as bitsandbytes' PyTorch backend
                            ("default", also what its CUDA kernel computes) quantises them: the nearest entry
                            of create_dynamic_map(signed=True)
  "<c>.absmax_codes_native" [numel / 64]: the same codes from bitsandbytes' native CPU library (QuantState.absmax
                            as quantize_4bit returns it on the CPU), which looks the nearest entry up in a
                            65536-bin table and so differs by one step on a few values (kernels/quant/NOTES.md)
  "<c>.dequant"             dequantize_4bit of (packed, absmax_codes) in float32
  "<c>.dequant_dtype"       the same in the weight's dtype (bnb's conversion from float32)
  "<c>.dequant_native"      dequantize_4bit of bnb's own state (absmax_codes_native), float32
and for 2-D weights, bnb.functional.int8_vectorwise_quant / int8_vectorwise_dequant:
  "<c>.int8"                [rows, cols] the int8 codes
  "<c>.int8_absmax"         [rows] float32 row absmax
  "<c>.int8_dequant"        [rows, cols] float32
plus "nf4_code" [16] and "dynamic_map" [256] float32, bitsandbytes' two code books.

Integer codes are stored as int64 (tests/test_util.h's ReadTensors reads F32, I64, BF16, F16 and F64); the C++ test
compares them exactly.
"""

import copy
import logging
import os
import sys

import torch
from safetensors.torch import save_file

# bitsandbytes' CPU backend logs that an optional AVX-512 GEMM package is absent; nothing here uses it.
logging.disable(logging.WARNING)
import bitsandbytes.functional as F  # noqa: E402

# name -> (shape, dtype). Llama-like stand-ins (rows and columns multiples of 64), a block count that leaves a partial
# 256-block for the double quantisation, rows that do not align with 64-blocks (the tiny model's down_proj is
# [64, 172]), a 1-D and a 3-D tensor; each element type bitsandbytes quantises.
CASES = {
    "q_proj_256x512_f32": ((256, 512), torch.float32),
    "up_proj_128x1024_bf16": ((128, 1024), torch.bfloat16),
    "down_proj_64x172_bf16": ((64, 172), torch.bfloat16),
    "o_proj_96x320_f16": ((96, 320), torch.float16),
    "vector_4096_f32": ((4096,), torch.float32),
    "stack_4x48x64_f32": ((4, 48, 64), torch.float32),
}


def random_weight(shape, dtype, gen):
    """Normal weights at a per-row scale spread over two decades (so block absmax values vary and their double
    quantisation has work to do), with 0.2 % outliers up to 30x; never an exact zero."""
    rows = shape[0]
    scale = torch.exp(torch.empty(rows).uniform_(-2.3, 2.3, generator=gen)) * 0.02
    w = torch.randn(shape, generator=gen) * scale.view(-1, *([1] * (len(shape) - 1)))
    outliers = torch.rand(shape, generator=gen) < 2e-3
    w = torch.where(outliers, w * torch.empty(shape).uniform_(5, 30, generator=gen), w).to(dtype)
    zero = w == 0
    w[zero] = torch.tensor(1e-3, dtype=dtype)
    assert not (w == 0).any()
    return w


def default_backend_codes(values, code):
    """bitsandbytes' PyTorch implementation of quantize_blockwise (backends/default/ops.py), which the CPU dispatch
    key overrides with the native library: redispatching to CompositeExplicitAutograd reaches it."""
    keys = torch._C.DispatchKeySet(torch._C.DispatchKey.CompositeExplicitAutograd)
    return torch.ops.bitsandbytes.quantize_blockwise.default.redispatch(keys, values, code, 256)


def main(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(22)
    dynamic_map = F.create_dynamic_map(signed=True)
    out = {"nf4_code": F.get_4bit_type("nf4", device="cpu").float(), "dynamic_map": dynamic_map}
    for name, (shape, dtype) in CASES.items():
        w = random_weight(shape, dtype, gen)
        packed, state = F.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=True)
        packed_plain, plain = F.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=False)
        assert torch.equal(packed, packed_plain)
        absmax = plain.absmax
        offset = state.offset.reshape(1).float()
        assert offset.item() == absmax.mean().item()
        codes, absmax2 = default_backend_codes(absmax - state.offset, dynamic_map)
        assert torch.equal(absmax2, state.state2.absmax), name
        steps = (codes.long() - state.absmax.long()).abs()
        assert steps.max() <= 1 and steps.float().mean() < 0.02, f"{name}: native and default codes differ by {steps}"

        # dequantize_4bit returns a 1-D weight as [1, n]; the fixture keeps the weight's shape.
        default_state = copy.deepcopy(state)
        default_state.absmax = codes
        dequant = F.dequantize_4bit(packed, default_state).reshape(shape)
        default_state.dtype = torch.float32
        dequant_f32 = F.dequantize_4bit(packed, default_state).reshape(shape)
        native_state = copy.deepcopy(state)
        native_state.dtype = torch.float32
        dequant_native = F.dequantize_4bit(packed, native_state).reshape(shape)

        out.update({
            f"{name}.weight": w,
            f"{name}.packed": packed.reshape(-1).long(),
            f"{name}.absmax": absmax,
            f"{name}.offset": offset,
            f"{name}.absmax2": absmax2,
            f"{name}.absmax_codes": codes.long(),
            f"{name}.absmax_codes_native": state.absmax.long(),
            f"{name}.dequant": dequant_f32,
            f"{name}.dequant_dtype": dequant,
            f"{name}.dequant_native": dequant_native,
        })
        if w.dim() == 2:
            int8, row_absmax, _ = F.int8_vectorwise_quant(w.clone())
            out.update({
                f"{name}.int8": int8.long(),
                f"{name}.int8_absmax": row_absmax,
                f"{name}.int8_dequant": F.int8_vectorwise_dequant(int8, row_absmax),
            })
        differing = int((steps != 0).sum())
        print(f"{name}: {list(shape)} {dtype}, {differing} of {codes.numel()} native absmax codes one step off")
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(out_dir, "nf4.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1])
