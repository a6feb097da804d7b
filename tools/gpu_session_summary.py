"""Writes summary.json for tools/gpu-session.sh from what its steps left in the logs folder: the step table,
ctest's JUnit file, the compute-sanitizer logs, the training run's metrics and machine.txt. Run after every step,
so a session cut short still leaves a summary of what it did. Standard library only (the GPU machine's python3).

usage: gpu_session_summary.py --steps steps.tsv --logs DIR --commit SHA --has-gpu 0|1 --out summary.json
"""
import argparse
import datetime
import json
import os
import re
import tempfile
import xml.etree.ElementTree as ET


def read_steps(path):
    steps = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            name, status, seconds, detail = line.rstrip("\n").split("\t", 3)
            steps.append({"name": name, "status": status, "seconds": int(seconds), "detail": detail})
    return steps


def read_tests(junit_path):
    """Every test ctest ran (the `gpu` label and the fixtures it pulled in), by outcome."""
    if not os.path.exists(junit_path):
        return None
    outcome = {"passed": [], "failed": [], "skipped": []}
    for case in ET.parse(junit_path).getroot().iter("testcase"):
        name = case.get("name")
        if case.find("failure") is not None or case.find("error") is not None or case.get("status") == "fail":
            outcome["failed"].append(name)
        elif case.find("skipped") is not None or case.get("status") in ("notrun", "disabled"):
            outcome["skipped"].append(name)
        else:
            outcome["passed"].append(name)
    total = sum(len(v) for v in outcome.values())
    return {"tests_total": total, "tests_passed": len(outcome["passed"]), "tests_failed": len(outcome["failed"]),
            "tests_skipped": len(outcome["skipped"]), "failed": outcome["failed"], "skipped": outcome["skipped"],
            "passed": outcome["passed"]}


def read_sanitizer(log_path):
    """compute-sanitizer's own count of errors (memcheck, synccheck) or hazards (racecheck); None if it never
    printed its summary (it did not run to the end)."""
    if not os.path.exists(log_path):
        return None
    text = open(log_path, encoding="utf-8", errors="replace").read()
    race = re.search(r"RACECHECK SUMMARY: (\d+) hazards? displayed \((\d+) errors?, (\d+) warnings?\)", text)
    if race:
        return {"errors": int(race.group(2)), "warnings": int(race.group(3)), "hazards": int(race.group(1))}
    summary = re.search(r"ERROR SUMMARY: (\d+) errors?", text)
    return {"errors": int(summary.group(1))} if summary else None


def read_training(metrics_path, log_path):
    """First and last logged loss, the last throughput and the peak device memory of an `agora train` run (the
    train or qlora_train step), and the memory model's prediction beside the CUDA allocator's peak from the
    "memory: predicted ..." line its log.txt closes with: the GPU point of docs/memory_model.md's calibration."""
    if not os.path.exists(metrics_path):
        return None
    records = [json.loads(line) for line in open(metrics_path, encoding="utf-8") if line.strip()]
    train = [r for r in records if r.get("kind") == "train" and "tokens_per_second" in r]
    if not train:
        return None
    last = train[-1]
    found = {"steps": last.get("step"), "loss_first_logged": train[0].get("loss"), "loss_last": last.get("loss"),
             "tokens_per_second": last.get("tokens_per_second"), "peak_memory_gib": last.get("peak_memory_gib")}
    if os.path.exists(log_path):
        text = open(log_path, encoding="utf-8", errors="replace").read()
        memory = re.search(r"memory: predicted ([\d.]+) MiB per rank, measured ([\d.]+) MiB", text)
        if memory:
            found["memory_predicted_mib"], found["memory_measured_mib"] = map(float, memory.groups())
    return found


def read_machine(path):
    facts = {}
    if not os.path.exists(path):
        return facts
    text = open(path, encoding="utf-8", errors="replace").read()
    gpu = re.search(r"^name, driver_version.*\n(.+)$", text, re.M)
    if gpu:
        parts = [p.strip() for p in gpu.group(1).split(",")]
        facts["gpu"], facts["driver"] = parts[0], parts[1] if len(parts) > 1 else None
    torch = re.search(r"^torch (\S+) cuda (\S+)", text, re.M)
    if torch:
        facts["torch"], facts["torch_cuda"] = torch.group(1), torch.group(2)
    nvcc = re.search(r"^Build cuda_(\S+)", text, re.M) or re.search(r"release (\S+),", text)
    if nvcc:
        facts["nvcc"] = nvcc.group(1)
    return facts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", required=True)
    parser.add_argument("--logs", required=True)
    parser.add_argument("--commit", required=True)
    parser.add_argument("--has-gpu", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    summary = {"kind": "agora gpu-session", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
               "commit": args.commit, "has_gpu": bool(args.has_gpu)}
    summary.update(read_machine(os.path.join(os.path.dirname(args.out), "machine.txt")))
    summary["steps"] = read_steps(args.steps)
    tests = read_tests(os.path.join(args.logs, "ctest_gpu.xml"))
    if tests is not None:
        summary["tests"] = tests
        summary.update({k: tests[k] for k in ("tests_total", "tests_passed", "tests_failed", "tests_skipped")})
    sanitizers = {}
    for name in ("attention_memcheck", "loss_memcheck", "attention_racecheck", "attention_synccheck"):
        found = read_sanitizer(os.path.join(args.logs, name + ".log"))
        if found is not None:
            sanitizers[name] = found
    summary["sanitizer_errors"] = sanitizers
    for name in ("train", "qlora_train"):
        training = read_training(os.path.join(args.logs, name + "_metrics.jsonl"),
                                 os.path.join(args.logs, name + "_log.txt"))
        if training is not None:
            summary[name] = training

    # Atomic: a reader (or a kill) never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(args.out)), suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
