"""`agora eval` against transformers + PEFT (CPU, fp32) on a random model with a LoRA adapter:
  - every answer's token ids are what sentencepiece gives (the continuation is what encoding prompt + answer adds
    after the prompt's encoding, as lm-evaluation-harness splits them);
  - every answer's log-likelihood equals transformers + PEFT's on those ids (relative error <= 1e-5);
  - acc, acc_norm and mc2 in the results JSON equal an independent recomputation (to 1e-9) from the task files
    and the per-answer log-likelihoods Agora reports, each checked against transformers' above (recomputing from
    transformers' own would let mc2, a ratio of tiny probabilities, magnify their 1e-7 differences);
  - --generate writes the base model's (adapter disabled) and the tuned model's greedy answers, as transformers'
    generate gives them.

usage: check_eval.py AGORA_BINARY MODEL_DIR ADAPTER_DIR TASK_DIR SCRATCH_DIR
"""
import json
import math
import os
import subprocess
import sys

import sentencepiece as spm
import torch
from peft import PeftModel
from transformers import LlamaForCausalLM

BOUND = 1e-5
TASKS = ["alignment_mc.jsonl", "truthfulqa_sample_mc_task.json", "hhh_sample_task.json"]
PROMPTS = ["Tell me about honesty", "How should I answer a rude message?", "Summarise: the cat sat on the mat"]


def read_task(path):
    """[(prompt, [(choice, right)], mc2 or None)] as the README of assets/eval and data/eval_tasks.h define them."""
    if path.endswith(".jsonl"):
        items = []
        for line in open(path):
            j = json.loads(line)
            answer = j["answer"] if isinstance(j["answer"], int) else j["choices"].index(j["answer"])
            items.append((f"Question: {j['question']}\nAnswer:",
                          [(" " + c, i == answer) for i, c in enumerate(j["choices"])], None))
        return items
    data = json.load(open(path))
    if isinstance(data, list):
        return [(f"Q: {j['question']}\nA:", [(" " + c, s == 1) for c, s in j["mc1_targets"].items()],
                 [(" " + c, s == 1) for c, s in j["mc2_targets"].items()]) for j in data]
    return [(j["input"], [(" " + c, s == max(j["target_scores"].values())) for c, s in j["target_scores"].items()],
             None) for j in data["examples"]]


def metrics(items, ll):
    acc = acc_norm = mc2 = 0.0
    for prompt, choices, mc2_set in items:
        lls = [ll[(prompt, c)] for c, _ in choices]
        acc += choices[max(range(len(lls)), key=lambda i: lls[i])][1]
        acc_norm += choices[max(range(len(lls)), key=lambda i: lls[i] / len(choices[i][0].encode()))][1]
        mass_set = mc2_set if mc2_set else choices
        probs = [math.exp(ll[(prompt, c)]) for c, _ in mass_set]
        mc2 += sum(p for p, (_, right) in zip(probs, mass_set) if right) / sum(probs)
    n = len(items)
    return {"acc": acc / n, "acc_norm": acc_norm / n, "mc2": mc2 / n}


def main():
    agora, model_dir, adapter_dir, task_dir, scratch = sys.argv[1:6]
    os.makedirs(scratch, exist_ok=True)
    details, results = os.path.join(scratch, "details.jsonl"), os.path.join(scratch, "results.json")
    prompts, side = os.path.join(scratch, "prompts.jsonl"), os.path.join(scratch, "side_by_side")
    with open(prompts, "w") as f:
        for i, p in enumerate(PROMPTS):
            f.write(json.dumps({"id": f"p{i}", "prompt": p}) + "\n")
    tasks = [os.path.join(task_dir, t) for t in TASKS]
    run = subprocess.run([agora, "eval", "--model", model_dir, "--adapter", adapter_dir, "--task", ",".join(tasks),
                          "--details", details, "--out", results, "--generate", prompts, "--generate_out", side,
                          "--max_new_tokens", "8", "--device", "cpu", "--dtype", "float32", "--commit", "test"],
                         capture_output=True, text=True)
    print(run.stdout)
    if run.returncode != 0:
        sys.exit(f"agora eval failed:\n{run.stderr}")

    sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
    base = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    failures, worst, lines = 0, 0.0, [json.loads(line) for line in open(details)]
    ll = {}
    for d in lines:
        prompt = d["prompt_text"]
        context = [sp.bos_id()] + sp.encode(prompt)
        whole = [sp.bos_id()] + sp.encode(prompt + d["choice"])
        if d["prompt_ids"] != context or d["continuation_ids"] != whole[len(context):]:
            failures += 1
            print(f"FAIL token ids of {d['item']} {d['choice']!r}")
        ids = torch.tensor([d["prompt_ids"] + d["continuation_ids"]])
        with torch.no_grad():
            logprobs = model(ids).logits[0].double().log_softmax(-1)
        p = len(d["prompt_ids"])
        want = sum(logprobs[p - 1 + i, t].item() for i, t in enumerate(d["continuation_ids"]))
        error = abs(d["loglikelihood"] - want) / abs(want)
        worst = max(worst, error)
        if error > BOUND:
            failures += 1
            print(f"FAIL {d['item']} {d['choice']!r}: agora {d['loglikelihood']} transformers+PEFT {want}")
        ll[(prompt, d["choice"])] = d["loglikelihood"]  # checked against transformers+PEFT above
    print(f"{len(lines)} answers: worst relative error of the log-likelihood {worst:.2e} (bound {BOUND})")

    got = {t["file"]: t for t in json.load(open(results))["tasks"]}
    for path in tasks:
        want = metrics(read_task(path), ll)
        for name, value in want.items():
            if abs(got[path]["metrics"][name] - value) > 1e-9:
                failures += 1
                print(f"FAIL {path} {name}: agora {got[path]['metrics'][name]} recomputed {value}")
        print(f"{os.path.basename(path)}: {got[path]['metrics']} == recomputed")

    answers = {j["id"]: j for j in map(json.loads, open(side + ".jsonl"))}
    for i, text in enumerate(PROMPTS):
        ids = torch.tensor([[sp.bos_id()] + sp.encode(text)])
        kwargs = dict(attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=8,
                      eos_token_id=sp.eos_id(), pad_token_id=0)
        with torch.no_grad():
            tuned = model.generate(input_ids=ids, **kwargs)[0, ids.shape[1]:].tolist()
            with model.disable_adapter():
                untuned = model.generate(input_ids=ids, **kwargs)[0, ids.shape[1]:].tolist()
        for who, out in (("tuned", tuned), ("base", untuned)):
            if answers[f"p{i}"][who] != sp.decode(out):
                failures += 1
                print(f"FAIL --generate {who} p{i}: agora {answers[f'p{i}'][who]!r} transformers {sp.decode(out)!r}")
    print(f"--generate: {len(PROMPTS)} prompts, base and tuned answers as transformers + PEFT give them")
    print(f"{failures} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
