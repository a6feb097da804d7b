#!/usr/bin/env python3
"""Checks that the reference `safetensors` package reads a file Agora wrote as Agora meant it.

Usage: check_safetensors_readback.py FILE JSON
       check_safetensors_readback.py OUT_DIR   (FILE and JSON are OUT_DIR/agora_written.{safetensors,json})

JSON (written by tests/safetensors_test.cpp next to FILE) holds
{"metadata": {...}, "tensors": {NAME: {"dtype": "F32", "shape": [...], "hex": "<raw bytes>"}}}.
The file is read twice: with safetensors.deserialize (dtype names, shapes and bytes, every dtype) and with
safe_open(framework="pt") (metadata, and tensors for the dtypes torch has). Exits non-zero on any mismatch.
"""
import json
import os
import sys

import safetensors
import torch

# Every dtype but F6_E2M3 / F6_E3M2, which torch lacks.
TORCH_DTYPES = {
    "BOOL", "F4", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16", "U16", "F16",
    "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64",
}


def main():
    if len(sys.argv) == 2:
        path = os.path.join(sys.argv[1], "agora_written.safetensors")
        expected_path = os.path.join(sys.argv[1], "agora_written.json")
    elif len(sys.argv) == 3:
        path, expected_path = sys.argv[1], sys.argv[2]
    else:
        sys.exit(__doc__)
    with open(expected_path) as f:
        expected = json.load(f)
    with open(path, "rb") as f:
        content = f.read()

    errors = []
    found = dict(safetensors.deserialize(content))
    if set(found) != set(expected["tensors"]):
        errors.append(f"tensor names: found {sorted(found)}, expected {sorted(expected['tensors'])}")
    for name, want in expected["tensors"].items():
        got = found.get(name)
        if got is None:
            continue
        for key, value in (("dtype", got["dtype"]), ("shape", list(got["shape"])), ("hex", bytes(got["data"]).hex())):
            if value != want[key]:
                errors.append(f"{name}: {key} is {value!r}, expected {want[key]!r}")

    with safetensors.safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
        if metadata != expected["metadata"]:
            errors.append(f"metadata is {metadata!r}, expected {expected['metadata']!r}")
        for name, want in expected["tensors"].items():
            if want["dtype"] not in TORCH_DTYPES or name not in found:
                continue
            data = f.get_tensor(name).reshape(-1).view(torch.uint8).numpy().tobytes().hex()
            if data != want["hex"]:
                errors.append(f"{name}: torch reads bytes {data}, expected {want['hex']}")

    for error in errors:
        print(f"{path}: {error}", file=sys.stderr)
    if errors:
        sys.exit(1)
    print(f"{path}: {len(expected['tensors'])} tensors and metadata read back as written")


if __name__ == "__main__":
    main()
