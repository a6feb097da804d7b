#!/usr/bin/env bash
# On a build machine (network): download the Debian packages the GPU machine lacks into .debs/ (git-ignored),
# so `make gpu-check` can unpack them there. The GPU machine already has torch, transformers, safetensors and
# sentencepiece in its python3, nvcc, cmake and ninja.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$root/.debs"
cd "$root/.debs"
apt-get update -qq
# The -dev packages and the runtime libraries they link against.
apt-get download nlohmann-json3-dev libabsl-dev libabsl20220623 libgtest-dev libgmock-dev libyaml-cpp-dev libyaml-cpp0.7 libpcre2-dev libpcre2-8-0 libgloo-dev
ls -la "$root/.debs"
