#!/usr/bin/env python3
"""Writes fuzz/corpus/<target>/: small valid inputs each fuzz target starts from, cut from the repository's own
assets (the tiny model, the bundled seed samples, the recipes) and a few hand-written variants, so the fuzzer
begins inside each format instead of rediscovering JSON. Run from the repository root with the venv's python
(safetensors, tokenizers); the output is committed, so this only reruns when a format changes."""
import json
import os
import pathlib
import shutil
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "corpus"


def write(target, name, data):
    path = OUT / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def first_lines(path, n):
    return "".join(open(path, encoding="utf-8").readlines()[:n])


def safetensors_file(tensors, metadata=None):
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    tiny = ROOT / "assets" / "tiny-llama"
    seeds = ROOT / "assets" / "data" / "seeds"

    write("safetensors", "two_tensors", safetensors_file(
        [("a", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)), ("b", "BF16", [3], b"\x80\x3f" * 3)],
        {"format": "pt"}))
    write("safetensors", "empty_and_scalar", safetensors_file(
        [("e", "F16", [0, 4], b""), ("s", "I64", [], struct.pack("<q", 7))]))
    write("safetensors", "sub_byte", safetensors_file([("f4", "F4", [2, 2], b"\x12\x34")]))

    write("shard_index", "two_shards", json.dumps({"metadata": {"total_size": 100}, "weight_map": {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "lm_head.weight": "model-00002-of-00002.safetensors"}}))

    write("llama_config", "tiny_llama", (tiny / "config.json").read_text())
    llama3 = json.loads((tiny / "config.json").read_text())
    llama3.update({"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                   "eos_token_id": [1, 2], "tie_word_embeddings": True, "num_key_value_heads": 2})
    write("llama_config", "llama3_rope", json.dumps(llama3))

    write("peft_adapter_config", "lora", json.dumps({
        "peft_type": "LORA", "r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "target_modules": ["q_proj", "v_proj"],
        "bias": "none", "use_rslora": False, "use_dora": False, "fan_in_fan_out": False, "rank_pattern": {},
        "alpha_pattern": {}, "modules_to_save": None, "task_type": "CAUSAL_LM"}))
    write("peft_adapter_config", "string_targets", json.dumps({
        "peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": "q_proj,k_proj,down_proj"}))

    for recipe in ["tiny_demo.yaml", "tiny_dpo.yaml", "closed_loop_sandbox_tiny.yaml"]:
        write("recipe", recipe, (ROOT / "recipes" / recipe).read_text())
    write("recipe", "with_overrides", (ROOT / "recipes" / "tiny_demo.yaml").read_text() +
          "\0optimizer.lr=1e-4\nlora.rank=4\ndata.max_seq_len=64")

    formats = ["auto", "messages", "prompt_response", "sharegpt", "dromedary", "sandbox_groups", "preference"]
    record = {
        "messages": '{"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}, '
                    '{"role": "assistant", "content": "Hello!"}]}',
        "prompt_response": '{"prompt": "2+2?", "response": "4", "system": null}',
        "sharegpt": '{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}',
        "dromedary": '{"example_id": 3, "instruction": "Name a color.", "input": "", "output": "Blue."}',
        "sandbox_groups": '{"query": "q?", "responses": ["good", "bad"], "scores": [7.0, 2.0]}',
        "preference": '{"prompt": "q?", "chosen": "yes", "rejected": "no"}',
    }
    for name, text in record.items():
        write("record", name, bytes([formats.index(name)]) + text.encode())
        write("record", "auto_" + name, b"\0" + text.encode())

    write("jsonl_dataset", "messages", b"\0" + first_lines(ROOT / "assets/data/sandbox_demo/train.jsonl", 3).encode())
    write("jsonl_dataset", "bad_lines_skipped", b"\1" + (record["messages"] + "\nnot json\n\r\n" +
                                                        record["messages"][:40] + "\n").encode())
    write("jsonl_dataset", "json_array", b"\0" + (seeds / "matrix" / "train.json").read_bytes()[:4000])
    write("jsonl_dataset", "preference", b"\0" + first_lines(seeds / "preference" / "train.jsonl", 2).encode())

    logs = sorted((seeds / "sandbox_logs" / "train").rglob("*.json*"))
    for log in logs[:2]:
        write("sandbox_logs", log.name, first_lines(log, 6))

    write("eval_task", "truthfulqa", b"\0" + (ROOT / "assets/eval/truthfulqa_sample_mc_task.json").read_bytes())
    write("eval_task", "bigbench", b"\1" + (ROOT / "assets/eval/hhh_sample_task.json").read_bytes())
    write("eval_task", "jsonl", b"\2" + first_lines(ROOT / "assets/eval/alignment_mc.jsonl", 3).encode())

    write("trainer_state", "state", json.dumps({
        "format": "agora.trainer_state.v1", "step": 12, "data_position": {"epoch": 1, "batch": 3},
        "skipped_steps": 1, "trained_tokens": 4096, "seed": 42, "world_size": 2,
        "rng_states": {"cpu": "AAEC", "cuda:0": "AwQF"},
        "files": {"model.safetensors": {"bytes": 388856, "crc32c": 3735928559},
                  "optimizer.safetensors": {"bytes": 10, "crc32c": 0}}}, indent=2))

    write("sentencepiece_model", "tiny_llama", (tiny / "tokenizer.model").read_bytes())
    write("bpe_tokenizer_json", "byte_level_bpe", small_bpe_tokenizer_json())
    for i, text in enumerate(["Hello, world!", "<s>[INST] hi [/INST] ok</s>", "日本語 🦙 café\n\n\ttabs",
                              "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
                              "\x00\xff\xfe broken \xc3"]):
        write("tokenize_text", f"text_{i}", text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)

    requests = [
        {"id": "q1", "prompt": "Hello", "max_new_tokens": 8, "temperature": 0.7, "top_p": 0.9, "seed": 3,
         "stop": ["\n"], "logit_bias": {"5": -2.5}},
        {"id": 2, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
         "top_k": 5, "min_p": 0.1, "repetition_penalty": 1.2, "no_repeat_ngram_size": 3, "adapter": False},
        {"id": "ids", "prompt_ids": [1, 22, 333], "choices": ["yes", "no"]},
        {"id": "rating", "prompt": "Rate 1-7:", "integer_range": [1, 7], "stop": "."}]
    lines = "".join(json.dumps(r) + "\n" for r in requests)
    write("generation_requests", "all_fields", b"\0" + lines.encode())
    write("generation_requests", "bad_lines_skipped", b"\1" + (lines + "not json\n{\"id\": \"q1\", \"prompt\": \"again\"}\n"
                                                          "{\"id\": 9, \"prompt\": \"x\", \"top_k\": 1.5}\n").encode())


def small_bpe_tokenizer_json():
    """A byte-level BPE like Llama-3's (its split regex, ByteLevel, special tokens), trained to 300 pieces."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    split = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    text = (ROOT / "assets/data/sandbox_demo/train.jsonl").read_text().splitlines()[:200]
    tok.train_from_iterator(text, trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                      "<|end_header_id|>", "<|eot_id|>"]])
    return tok.to_str()


if __name__ == "__main__":
    main()
