#!/usr/bin/env bash
# `make demo`: the embedded tiny model (assets/tiny-llama, random weights) generates from a prompt.
# Random weights give random text; the trainer issue turns this into fine-tune-then-generate.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="$root/assets/tiny-llama"
echo "== agora generate (greedy), embedded tiny model =="
"$root/build/agora" generate --model "$model" --prompt "The quick brown fox" --max-new-tokens 24
echo "== agora generate (sampled: temperature 0.8, top-p 0.9, seed 1), two prompts in one batch =="
prompts="$(mktemp)"
printf 'Once upon a time\nThe meaning of life is\n' > "$prompts"
"$root/build/agora" generate --model "$model" --prompt-file "$prompts" --max-new-tokens 24 \
  --temperature 0.8 --top-p 0.9 --seed 1
rm -f "$prompts"
