#!/usr/bin/env bash
# `make demo`: LoRA fine-tuning of the embedded tiny model (assets/tiny-llama) on the bundled sandbox-society
# sample (assets/data/sandbox_demo) with recipes/tiny_demo.yaml: stop half-way as a preempted job would, resume
# from the checkpoint, answer a question with the adapter, score the bundled evaluation tasks before and after,
# export the adapter merged into a full HF model, and run the tiny closed loop of Stable Alignment's sandbox
# (a society of the model simulates, the model trains on what it made, is scored, simulates again).
# The run folder is build/demo_run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
agora="$root/build/agora"
run="$root/build/demo_run"
rm -rf "$run"
cd "$root"

echo "== 1/3 agora train: the first half (training.stop_after_steps), then exit with a checkpoint =="
"$agora" train --config recipes/tiny_demo.yaml output_dir="$run" training.stop_after_steps=800
echo
echo "== 2/3 agora train resume=auto: continue from the newest checkpoint to the end =="
"$agora" train --config recipes/tiny_demo.yaml output_dir="$run" resume=auto
echo
echo "== the loss falling: validation loss at each evaluation (from $run/log.txt) =="
grep -E "eval at step|resumed from" "$run/log.txt" | sed 's/^[0-9-]* [0-9:]* /  /'
echo
final="$(ls -d "$run"/checkpoints/step_* | sort | tail -n 1)"
question="How can I get my neighbour to stop playing loud music at night?"
echo "== 3/3 agora generate: the base model with the adapter of $final (greedy, llama2 chat template) =="
"$agora" generate --model assets/tiny-llama --adapter "$final" --chat_template llama2 --prompt "$question" \
  --max-new-tokens 80
echo
echo "== agora eval: the bundled multiple-choice tasks, base model and then with the adapter =="
tasks=assets/eval/alignment_mc.jsonl,assets/eval/truthfulqa_sample_mc_task.json,assets/eval/hhh_sample_task.json
"$agora" eval --model assets/tiny-llama --task "$tasks" --out "$run/eval_base.json"
"$agora" eval --model assets/tiny-llama --adapter "$final" --task "$tasks" --out "$run/eval_tuned.json"
echo
echo "== agora export --merge: the adapter folded into the base, a plain HF model folder =="
"$agora" export --merge --model assets/tiny-llama --adapter "$final" --out "$run/merged"
ls "$run/merged"
echo
echo "== agora simulate: recipes/closed_loop_sandbox_tiny.yaml, 2 rounds of simulate -> train -> eval =="
"$agora" simulate --config recipes/closed_loop_sandbox_tiny.yaml output_dir="$run/closed_loop"
echo
echo "Run folder: $run (recipe.yaml, log.txt, metrics.jsonl, tb/ for TensorBoard, checkpoints/: PEFT adapter"
echo "folders with the optimizer and trainer state, merged/: the merged model, closed_loop/: each round's simulated"
echo "data, training run and eval, and closed_loop.md)"
