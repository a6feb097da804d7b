#!/usr/bin/env bash
# The whole GPU check in one bounded command, for the GPU machine (one H200, no network, torch 2.11 + transformers
# + peft in its python3, nvcc, cmake, ninja, compute-sanitizer; no make, no -dev packages). Carry `.debs/` (made
# by tools/gpu-debs.sh on a machine with network) and pass the commit, as .git does not travel:
#
#   AGORA_COMMIT=<sha> bash tools/gpu-session.sh            # every step, ~8 min, inside AGORA_DEADLINE_S (470 s)
#   AGORA_STEPS="build tests" AGORA_COMMIT=<sha> bash tools/gpu-session.sh   # rerun chosen steps on the warm build
#
# Steps run in order of value and each has its own timeout; one global deadline bounds them all, and a step that
# would start too late is recorded as skipped. The steps that need a GPU report "no-gpu" where there is none
# (the rehearsal on a CPU machine). What comes back is at most 8 files in $OUT (or gpu-results/):
#   summary.json   per step: status, seconds, detail; tests passed/failed by name; sanitizer error counts;
#                  GPU, driver, torch, nvcc, commit, date (rewritten after every step, so a kill leaves one)
#   machine.txt    what the machine has (GPU, compilers, headers, tools)
#   attention_bench.json, linear_cross_entropy_bench.json, train_step_bench.json, simulate_sandbox_bench.json,
#                  nf4_bench.json
#                  the benchmarks' JSON
#   logs.tar.gz    every step's log, the ctest JUnit file, the training run's metrics.jsonl and log.txt
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-$root/gpu-results}"
build="${AGORA_GPU_BUILD_DIR:-$root/build-gpu}"
deadline=$((SECONDS + ${AGORA_DEADLINE_S:-470}))
commit="${AGORA_COMMIT:-$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)}"
all_steps="configure build tests attention_memcheck attention_bench loss_bench loss_memcheck attention_racecheck \
attention_synccheck train train_step simulate qlora_bench qlora_train"
steps=" ${AGORA_STEPS:-$all_steps} "
logs="$out/logs"
mkdir -p "$out" "$logs"
status_file="$logs/steps.tsv"   # name, status, seconds, detail: what summary.json is made from
: > "$status_file"
export PYTHONUNBUFFERED=1
python="$(command -v python3)"

has_gpu=0
nvidia-smi -L >/dev/null 2>&1 && "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
  2>/dev/null && has_gpu=1
sanitizer="$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)"

summarize() {
  "$python" "$root/tools/gpu_session_summary.py" --steps "$status_file" --logs "$logs" --commit "$commit" \
    --has-gpu "$has_gpu" --out "$out/summary.json" > /dev/null 2>> "$logs/summary_errors.log"
}

# record NAME STATUS SECONDS DETAIL
record() {
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$status_file"
  printf 'gpu-session: %-20s %-8s %4ss  %s\n' "$1" "$2" "$3" "$4"
  summarize
}

# step NAME TIMEOUT NEEDS_GPU COMMAND...: runs COMMAND under `timeout`, its output in logs/NAME.log. Exit 0 is
# passed, 124/137 timeout, anything else failed. A step not asked for is not run; one that would start after the
# deadline, or whose budget would be under 10 s, is skipped. Returns 0 only if the command passed.
step() {
  local name="$1" limit="$2" needs_gpu="$3"
  shift 3
  [[ "$steps" == *" $name "* ]] || return 1
  local left=$((deadline - SECONDS))
  if ((left < 10)); then record "$name" skipped 0 "global deadline reached"; return 1; fi
  if [[ "$needs_gpu" == gpu && $has_gpu -eq 0 ]]; then record "$name" no-gpu 0 "no CUDA GPU on this machine"; return 1; fi
  ((limit > left)) && limit=$left
  local start=$SECONDS rc
  timeout -k 10 "$limit" "$@" > "$logs/$name.log" 2>&1
  rc=$?
  local took=$((SECONDS - start)) status=passed
  ((rc == 124 || rc == 137)) && status=timeout
  ((rc != 0 && rc != 124 && rc != 137)) && status=failed
  record "$name" "$status" "$took" "exit $rc, limit ${limit}s"
  return "$rc"
}

# --- machine facts (always) -------------------------------------------------------------------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit: $commit  gpu: $has_gpu"
  if command -v nvidia-smi > /dev/null; then nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1; else echo "nvidia-smi: none"; fi
  "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1
  "$python" -c 'import transformers, peft; print("transformers", transformers.__version__, "peft", peft.__version__)' 2>&1
  (nvcc --version || /usr/local/cuda/bin/nvcc --version) 2>&1 | tail -1
  g++ --version 2>&1 | head -1
  cmake --version 2>&1 | head -1
  echo "ninja $(ninja --version 2>&1)"
  echo "compute-sanitizer: ${sanitizer:-none}"
  cuda_include="$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")/../include"
  for header in cublas_v2.h cusparse.h cusolverDn.h curand.h cufft.h nvtx3/nvToolsExt.h nccl.h cudnn.h; do
    [[ -f "$cuda_include/$header" ]] && echo "toolkit header $header: yes" || echo "toolkit header $header: NO"
  done
  echo "cores: $(nproc)  memory: $(free -g | awk '/Mem:/ {print $2}') GiB  disk free: $(df -h "$root" | awk 'NR==2 {print $4}')"
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt"

# --- the Debian packages this machine lacks, unpacked into a private prefix (always; a second or two) ------------
prefix=/tmp/agora-debs
libdir="$prefix/usr/lib/x86_64-linux-gnu"
if ls "$root"/.debs/*.deb > /dev/null 2>&1; then
  for deb in "$root"/.debs/*.deb; do dpkg -x "$deb" "$prefix"; done
  export LD_LIBRARY_PATH="$libdir:${LD_LIBRARY_PATH:-}"
  record debs passed 0 "$(ls "$root"/.debs/*.deb | wc -l) packages unpacked into $prefix"
else
  record debs failed 0 "no .debs/*.deb: run tools/gpu-debs.sh where there is network and carry .debs"
fi

# --- configure and build: Release, sm_90 only, only what the checks run -------------------------------------------
# (tools/configure.sh skips an already configured build, so a rerun only rebuilds what changed.)
step configure 120 any env BUILD_DIR="$build" AGORA_PYTHON="$python" AGORA_CMAKE_ARGS="-DCMAKE_BUILD_TYPE=Release \
-DAGORA_CUDA_ARCHS=90 -DCMAKE_PREFIX_PATH=$prefix/usr -DCMAKE_BUILD_RPATH=$libdir" "$root/tools/configure.sh"
gpu_targets="${AGORA_GPU_TARGETS:-agora flash_attention_test cross_entropy_test head_token_nll_test llama_parity_test \
generation_test distributed_test train_loop_test attention_bench linear_cross_entropy_bench train_step_bench \
nf4_cuda_test nf4_bench}"
# shellcheck disable=SC2086
step build "${AGORA_BUILD_TIMEOUT_S:-300}" any cmake --build "$build" --target $gpu_targets -j "$(nproc)"

# --- correctness gates first: the GPU tests, then compute-sanitizer on Agora's kernels ------------------------------
step tests 150 any ctest --test-dir "$build" -L gpu --output-on-failure --timeout 120 -j 4 \
  --output-junit "$logs/ctest_gpu.xml"

# compute-sanitizer TOOL TEST_BINARY GTEST_FILTER: only Agora's kernels are checked (every one lives in namespace
# agora::kernels, so "agora" is in each kernel's name, mangled or not): torch's own kernels are not ours to fix, and
# skipping them keeps the run short. Without torch's caching allocator every tensor is its own allocation, so
# memcheck sees exact bounds. Exit 3 = the tool found errors (1 would be a failed test).
kernel_filter=()
[[ -n "$sanitizer" ]] && "$sanitizer" --help 2>/dev/null | grep -q -- '--kernel-name ' && kernel_filter=(--kernel-name kns=agora)
sanitize() {
  local tool="$1" binary="$2" filter="$3"
  echo "compute-sanitizer --tool $tool ${kernel_filter[*]:-(no kernel filter: this version has no --kernel-name)}"
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$sanitizer" --tool "$tool" --error-exitcode 3 "${kernel_filter[@]}" \
    "$build/tests/$binary" --gtest_filter="$filter"
}
if [[ -n "$sanitizer" ]]; then
  step attention_memcheck 90 gpu sanitize memcheck flash_attention_test 'FlashAttentionCuda.SmallPackedCases'
else
  for name in attention_memcheck loss_memcheck attention_racecheck attention_synccheck; do
    [[ "$steps" == *" $name "* ]] && record "$name" skipped 0 "no compute-sanitizer on this machine"
  done
fi

# --- the benchmarks' JSON, then the remaining sanitizer runs ------------------------------------------------------
step attention_bench 120 gpu stdbuf -oL "$build/benchmarks/attention_bench" --out "$out/attention_bench.json" \
  --commit "$commit" --iters 5 --max-seq 8192
step loss_bench 90 gpu stdbuf -oL "$build/benchmarks/linear_cross_entropy_bench" --commit "$commit" \
  --json "$out/linear_cross_entropy_bench.json"
if [[ -n "$sanitizer" ]]; then
  step loss_memcheck 90 gpu sanitize memcheck cross_entropy_test '*Gpu*'
  step attention_racecheck 90 gpu sanitize racecheck flash_attention_test 'FlashAttentionCuda.SmallPackedCases'
  step attention_synccheck 60 gpu sanitize synccheck flash_attention_test 'FlashAttentionCuda.SmallPackedCases'
fi

# --- training: `agora train` (bf16 LoRA) on a random Llama-3.2-1B-shaped model, 20 steps of 2k packed rows ----------
train_run() {
  local model=/tmp/agora-random-1b run=/tmp/agora-train-1b
  rm -rf "$run"
  [[ -f "$model/config.json" ]] || "$python" "$root/tools/make_random_llama.py" --shape llama-3.2-1b --device cuda \
    --tokenizer "$root/assets/tiny-llama/tokenizer.model" "$model" || return 1
  "$build/agora" train --config "$root/recipes/tiny_demo.yaml" model.path="$model" output_dir="$run" device=cuda \
    data.train.path="$root/assets/data/sandbox_demo/train.jsonl" data.validation.path="$root/assets/data/sandbox_demo/valid.jsonl" \
    data.max_seq_len=2048 training.batch_size=4 training.max_steps=20 optimizer.lr=2e-4 logging.log_every_steps=5 \
    eval.every_steps=0 eval.max_batches=4 checkpoint.every_steps=0 resume=none || return 1
  cp "$run/metrics.jsonl" "$logs/train_metrics.jsonl" && cp "$run/log.txt" "$logs/train_log.txt"
}
step train 150 gpu train_run

# --- whole training steps beside HF transformers + PEFT: Llama-3.2-1B shape full and LoRA, 4 rows of 2k packed,
# then Llama-2-7B LoRA if the deadline allows (the driver skips runs that would start within 60 s of it) ---------
step train_step 200 gpu "$python" "$root/benchmarks/train_step/train_step_bench.py" --device cuda \
  --runs llama-3.2-1b:full,llama-3.2-1b:lora,llama-2-7b:lora --rows 4 --seq-len 2048 --steps 10 --warmup 3 \
  --agora-bin "$build/benchmarks/train_step_bench" --deadline-s $((deadline - SECONDS - 60)) --commit "$commit" \
  --json "$out/train_step_bench.json"

# --- agora simulate: a 10x10 sandbox round on the Llama-3.2-1B-shaped model of the train step, the engine batched ---
simulate_run() {
  local model=/tmp/agora-random-1b
  [[ -f "$model/config.json" ]] || "$python" "$root/tools/make_random_llama.py" --shape llama-3.2-1b --device cuda \
    --tokenizer "$root/assets/tiny-llama/tokenizer.model" "$model" || return 1
  "$python" "$root/benchmarks/simulate/sandbox_round_bench.py" --agora "$build/agora" --model "$model" --device cuda \
    --modes batched --grid 10 --max_new_tokens 64 --commit "$commit" --json "$out/simulate_sandbox_bench.json"
}
step simulate 120 gpu simulate_run

# --- QLoRA: the NF4 dequantise and GEMV kernels against HBM, then `agora train` of the 1B-shaped model on an NF4 base
# beside the bf16 LoRA run of the train step (tokens/s and peak memory in their logs) ---------------------------------
step qlora_bench 60 gpu stdbuf -oL "$build/benchmarks/nf4_bench" --commit "$commit" --json "$out/nf4_bench.json"
qlora_train_run() {
  local model=/tmp/agora-random-1b run=/tmp/agora-train-1b-qlora
  rm -rf "$run"
  [[ -f "$model/config.json" ]] || return 1
  "$build/agora" train --config "$root/recipes/tiny_demo.yaml" model.path="$model" output_dir="$run" device=cuda \
    lora.quantize_base=nf4 data.train.path="$root/assets/data/sandbox_demo/train.jsonl" \
    data.validation.path="$root/assets/data/sandbox_demo/valid.jsonl" data.max_seq_len=2048 training.batch_size=4 \
    training.max_steps=20 optimizer.lr=2e-4 logging.log_every_steps=5 eval.every_steps=0 checkpoint.every_steps=0 \
    resume=none || return 1
  cp "$run/metrics.jsonl" "$logs/qlora_train_metrics.jsonl" && cp "$run/log.txt" "$logs/qlora_train_log.txt"
}
step qlora_train 120 gpu qlora_train_run

tar -czf "$out/logs.tar.gz" -C "$out" logs && rm -rf "$logs"
echo "gpu-session: done in ${SECONDS}s; files in $out: $(ls "$out" | tr '\n' ' ')"
