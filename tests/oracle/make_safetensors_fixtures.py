#!/usr/bin/env python3
"""Writes safetensors files with the reference `safetensors` package, for tests/safetensors_test.cpp to read.

Usage: make_safetensors_fixtures.py OUT_DIR

OUT_DIR receives the .safetensors files and fixtures.json, which describes each file as the reference reader
sees it: {"files": {FILE: {"metadata": {...}, "byte_identical": bool,
                           "tensors": {NAME: {"dtype": "F32", "shape": [...], "hex": "<raw bytes>"}}}}}.
"byte_identical" says whether rewriting the file's tensors with our writer must reproduce it byte for byte:
only when its metadata has a single key, since the reference stores metadata in a hash map of random order.
"""
import json
import os
import sys

import numpy as np
import safetensors
import safetensors.numpy
import safetensors.torch
import torch


def random_bytes(rng, count):
    return torch.from_numpy(rng.integers(0, 256, size=count, dtype=np.uint8))


def torch_tensors(rng):
    """One tensor of every dtype torch can hand to safetensors, plus 0-dim and empty ones."""
    def randn(*shape):
        return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))

    def bits_as(dtype, *shape):
        # Any byte pattern is a value of these 8-bit float types; reinterpreting random bytes covers NaN
        # encodings and the like that converting from float32 would not produce.
        count = int(np.prod(shape))
        return random_bytes(rng, count).view(dtype).reshape(shape)

    return {
        "model.embed_tokens.weight": randn(16, 8),
        "model.layers.0.self_attn.q_proj.weight": randn(8, 8).to(torch.bfloat16),
        "model.norm.weight": randn(8).to(torch.float16),
        "f64": torch.from_numpy(rng.standard_normal((3, 2))),
        "scalar": randn(),  # 0-dim
        "empty": torch.zeros((0, 4), dtype=torch.float64),
        "ids": torch.from_numpy(rng.integers(-2**40, 2**40, size=5, dtype=np.int64)),
        "i32": torch.from_numpy(rng.integers(-2**31, 2**31, size=3, dtype=np.int32)),
        "i16": torch.from_numpy(rng.integers(-2**15, 2**15, size=(2, 2), dtype=np.int16)),
        "i8": torch.from_numpy(rng.integers(-128, 128, size=6, dtype=np.int8)),
        "u8": random_bytes(rng, 21).reshape(3, 7),
        "u16": torch.from_numpy(rng.integers(0, 2**16, size=4, dtype=np.uint16)),
        "u32": torch.from_numpy(rng.integers(0, 2**32, size=4, dtype=np.uint32)),
        "u64": torch.from_numpy(rng.integers(0, 2**63, size=2, dtype=np.uint64)),
        "mask": torch.from_numpy(rng.integers(0, 2, size=(2, 3)).astype(bool)),
        "c64": torch.complex(randn(3), randn(3)),
        "f8_e4m3": bits_as(torch.float8_e4m3fn, 4),
        "f8_e5m2": bits_as(torch.float8_e5m2, 2, 2),
        "f8_e4m3fnuz": bits_as(torch.float8_e4m3fnuz, 3),
        "f8_e5m2fnuz": bits_as(torch.float8_e5m2fnuz, 3),
        "f8_e8m0": bits_as(torch.float8_e8m0fnu, 5),
        # Two F4 values a byte: the header's shape is [2, 6].
        "f4": bits_as(torch.float4_e2m1fn_x2, 2, 3),
    }


def numpy_tensors(rng):
    return {
        "weight": rng.standard_normal((4, 5)).astype(np.float32),
        "half": rng.standard_normal(7).astype(np.float16),
        "counts": rng.integers(0, 2**64 - 1, size=3, dtype=np.uint64),
        "flags": rng.integers(0, 2, size=4).astype(bool),
        "none": np.zeros((2, 0, 3), dtype=np.int32),
    }


def describe(path, metadata):
    """The file as the reference reader sees it: dtype names, header shapes and raw bytes."""
    with open(path, "rb") as f:
        content = f.read()
    tensors = {
        name: {"dtype": info["dtype"], "shape": list(info["shape"]), "hex": bytes(info["data"]).hex()}
        for name, info in safetensors.deserialize(content)
    }
    with safetensors.safe_open(path, framework="numpy") as f:
        assert (f.metadata() or {}) == metadata, (path, f.metadata(), metadata)
    return {"metadata": metadata, "byte_identical": list(metadata) == ["format"], "tensors": tensors}


def raw_bytes(tensor):
    return tensor.reshape(-1).view(torch.uint8).numpy().tobytes()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(20240611)
    files = {}

    tensors = torch_tensors(rng)
    metadata = {"format": "pt"}
    path = os.path.join(out_dir, "torch_written.safetensors")
    safetensors.torch.save_file(tensors, path, metadata=metadata)
    files["torch_written.safetensors"] = describe(path, metadata)
    # The bytes the reference reader returns must be the bytes torch held: the fixture is self-consistent.
    for name, tensor in tensors.items():
        assert files["torch_written.safetensors"]["tensors"][name]["hex"] == raw_bytes(tensor).hex(), name

    arrays = numpy_tensors(rng)
    metadata = {"format": "np", "origin": "make_safetensors_fixtures.py", "note": "quote \" and ünïcode"}
    path = os.path.join(out_dir, "numpy_written.safetensors")
    safetensors.numpy.save_file(arrays, path, metadata=metadata)
    files["numpy_written.safetensors"] = describe(path, metadata)
    for name, array in arrays.items():
        assert files["numpy_written.safetensors"]["tensors"][name]["hex"] == array.tobytes().hex(), name

    metadata = {"format": "pt"}
    path = os.path.join(out_dir, "no_tensors.safetensors")
    safetensors.torch.save_file({}, path, metadata=metadata)
    files["no_tensors.safetensors"] = describe(path, metadata)

    with open(os.path.join(out_dir, "fixtures.json"), "w") as f:
        json.dump({"files": files}, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
