#!/usr/bin/env bash
# The one binary must run on GPU-less machines and register the CUDA backend where a GPU exists: it must record
# libtorch_cuda.so (force-linked) and must not record libcuda.so.1 (absent without a driver).
set -euo pipefail
needed="$(readelf -d "$1" | grep NEEDED)"
echo "$needed"
grep -q 'libtorch_cuda.so' <<<"$needed" || { echo "FAIL: $1 does not link libtorch_cuda.so"; exit 1; }
if grep -q 'libcuda.so' <<<"$needed"; then echo "FAIL: $1 records libcuda.so"; exit 1; fi
echo "ok: libtorch_cuda.so linked, no libcuda.so"
