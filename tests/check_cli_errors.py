"""What a new user tries with `agora`, as processes: each mistake ends in one clear error line and exit status 1
(never an abort, a backtrace or a silent success), `--help` works per command, and `agora tokenize` prints the ids
sentencepiece gives.

Usage: python check_cli_errors.py AGORA_BINARY SOURCE_DIR WORK_DIR
"""

import json
import os
import shutil
import subprocess
import sys

import sentencepiece
import torch
from safetensors.torch import load_file, save_file

ENV = dict(os.environ, OMP_NUM_THREADS="1")
failures = []


def run(agora, source, *args):
    return subprocess.run([agora, *args], cwd=source, env=ENV, capture_output=True, text=True, timeout=300)


def expect_error(agora, source, what, args, needle):
    proc = run(agora, source, *args)
    lines = proc.stderr.strip().splitlines()
    problems = []
    if proc.returncode != 1:
        problems.append(f"exit status {proc.returncode}, expected 1")
    if not lines or needle not in lines[-1]:
        problems.append(f"last stderr line lacks {needle!r}")
    if any(word in proc.stderr for word in ("terminate called", "Exception raised from", "internal error")):
        problems.append("an uncaught exception reached the user")
    if problems:
        failures.append(f"{what}: {'; '.join(problems)}\n  command: agora {' '.join(args)}\n  stderr: {proc.stderr[-2000:]}")
    else:
        print(f"{what}: {lines[-1][:170]}")


def model_copy(source, work, name, edit):
    """assets/tiny-llama copied with config.json edited."""
    folder = os.path.join(work, name)
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(os.path.join(source, "assets", "tiny-llama"), folder)
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        config = json.load(f)
    edit(config)
    with open(path, "w") as f:
        json.dump(config, f)
    return folder


def poisoned_model(source, work):
    """assets/tiny-llama with a NaN and an Inf in one weight."""
    folder = os.path.join(work, "nan_weights")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(os.path.join(source, "assets", "tiny-llama"), folder)
    path = os.path.join(folder, "model.safetensors")
    tensors = load_file(path)
    weight = tensors["model.layers.1.mlp.up_proj.weight"]
    weight.view(-1)[37] = float("nan")
    weight.view(-1)[4000] = float("-inf")
    save_file(tensors, path, metadata={"format": "pt"})
    return folder


def poisoned_adapter(work):
    """A PEFT LoRA adapter (rank 2 on q_proj of the tiny model's 2 layers) with one NaN."""
    folder = os.path.join(work, "nan_adapter")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "lora_dropout": 0.0, "target_modules": ["q_proj"],
                   "bias": "none", "task_type": "CAUSAL_LM"}, f)
    generator = torch.Generator().manual_seed(3)
    tensors = {}
    for layer in range(2):
        name = f"base_model.model.model.layers.{layer}.self_attn.q_proj"
        tensors[f"{name}.lora_A.weight"] = torch.randn(2, 64, generator=generator)
        tensors[f"{name}.lora_B.weight"] = torch.randn(64, 2, generator=generator)
    tensors["base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"][5, 1] = float("nan")
    save_file(tensors, os.path.join(folder, "adapter_model.safetensors"), metadata={"format": "pt"})
    return folder


def main():
    agora, source, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    tiny = os.path.join(source, "assets", "tiny-llama")
    gen = ["generate", "--model", tiny, "--prompt", "hi"]

    expect_error(agora, source, "prompt + new tokens past the positions", gen + ["--max-new-tokens", "600"],
                 "exceeds max_position_embeddings (512)")
    expect_error(agora, source, "negative --max-new-tokens", gen + ["--max-new-tokens=-3"], "max_new_tokens must be at least 1")
    expect_error(agora, source, "negative --temperature", gen + ["--temperature=-1"], "temperature must be >= 0")
    expect_error(agora, source, "negative --top-k", gen + ["--top-k=-2"], "top_k must be >= 0")
    expect_error(agora, source, "--top-p 0", gen + ["--temperature", "0.7", "--top-p", "0"], "top_p must be in (0, 1]")
    expect_error(agora, source, "a missing model folder", ["generate", "--model", os.path.join(work, "nowhere"),
                                                           "--prompt", "hi"], "no such model folder")
    for key, value in (("hidden_size", 10**12), ("num_hidden_layers", 10**9)):
        folder = model_copy(source, work, key, lambda c: c.__setitem__(key, value))
        expect_error(agora, source, f"config.json {key}: {value}", ["generate", "--model", folder, "--prompt", "hi"],
                     "config.json and the weights do not belong together")
    folder = model_copy(source, work, "rope", lambda c: c.__setitem__("rope_scaling", {"rope_type": "linear"}))
    expect_error(agora, source, "linear rope without factor", ["generate", "--model", folder, "--prompt", "hi"], "factor")
    folder = model_copy(source, work, "eps", lambda c: c.__setitem__("rms_norm_eps", None))
    expect_error(agora, source, "rms_norm_eps: null", ["generate", "--model", folder, "--prompt", "hi"], "rms_norm_eps")

    train = ["train", "--config=recipes/tiny_demo.yaml", f"output_dir={work}/run", "device=cpu"]
    expect_error(agora, source, "a batch larger than the data", train + ["training.batch_size=1000000"],
                 "asks for 1000000 rows a step, but data.train gives")
    if os.path.exists(os.path.join(work, "run", "recipe.yaml")):
        failures.append("a run that failed to start wrote recipe.yaml")

    # NaN or Inf in the weights: refused naming the file and tensor (a recipe may ask to load them anyway).
    poisoned = poisoned_model(source, work)
    bad_tensor = "tensor 'model.layers.1.mlp.up_proj.weight' holds 2 NaN or infinite values (the first at flat index 37)"
    expect_error(agora, source, "NaN weights (generate)", ["generate", "--model", poisoned, "--prompt", "hi"], bad_tensor)
    expect_error(agora, source, "NaN weights (train)", train + [f"model.path={poisoned}"], bad_tensor)
    warned = run(agora, source, *train, f"model.path={poisoned}", "model.on_nonfinite_weights=warn",
                 "training.max_steps=2", f"output_dir={work}/warned")
    log = open(os.path.join(work, "warned", "log.txt")).read() if os.path.exists(os.path.join(work, "warned", "log.txt")) else ""
    if warned.returncode != 0 or f"{bad_tensor}; loaded anyway (model.on_nonfinite_weights=warn)" not in log:
        failures.append(f"model.on_nonfinite_weights=warn: exit {warned.returncode}, log:\n{log}\n{warned.stderr[-2000:]}")
    else:
        print("NaN weights with model.on_nonfinite_weights=warn: loaded, logged, the run ends (its steps skipped)")
    expect_error(agora, source, "a NaN in a PEFT adapter", gen + ["--adapter", poisoned_adapter(work)],
                 "lora_B.weight' holds 1 NaN or infinite value (the first at flat index 11): refusing to load it")

    for command in ("train", "generate", "eval", "export", "simulate", "data", "tokenize"):
        proc = run(agora, source, command, "--help")
        if proc.returncode != 0 or f"agora {command}" not in proc.stdout or "--" not in proc.stdout:
            failures.append(f"agora {command} --help: exit {proc.returncode}\n{proc.stdout}{proc.stderr}")
    print("agora <command> --help: usage and flags for each of 7 commands")

    texts = ["Hello world", "  spaces  and\ttabs\n", "ünïcödé 中文 🙂", "<s> is text here"]
    processor = sentencepiece.SentencePieceProcessor(model_file=os.path.join(tiny, "tokenizer.model"))
    for text in texts:
        proc = run(agora, source, "tokenize", "--model", tiny, text)
        rows = [line.split("\t") for line in proc.stdout.splitlines()[1:-1]]
        ids = [int(row[1]) for row in rows]
        pieces = [json.loads(row[2]) for row in rows]
        expected = [processor.bos_id()] + processor.encode(text)
        if proc.returncode != 0 or ids != expected or pieces != [processor.id_to_piece(i) for i in expected]:
            failures.append(f"agora tokenize {text!r}: {ids} vs sentencepiece {expected}\n{proc.stdout}{proc.stderr}")
    print(f"agora tokenize: ids and pieces equal sentencepiece's for {len(texts)} texts")

    if failures:
        sys.exit("\n".join(failures))


if __name__ == "__main__":
    main()
