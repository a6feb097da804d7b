"""`agora simulate` end to end on the tiny model, for each method: two runs with the same seed write the same
records; a run killed with SIGKILL at random moments and started again ends with the records and training file
of an uninterrupted run; the sandbox logs convert with `agora data sandbox-to-groups` to the same training file;
ratings and verdicts are always members of their choices.

usage: check_simulate.py AGORA_BINARY SOURCE_DIR SCRATCH_DIR METHOD KILLS
"""
import json
import os
import random
import shutil
import subprocess
import sys
import time

RECIPES = {"sandbox": "closed_loop_sandbox_tiny.yaml", "matrix": "closed_loop_matrix_tiny.yaml",
           "self_align": "closed_loop_self_align_tiny.yaml"}
# Enough questions that a run lasts several seconds, so kills land in every phase.
SIZE = {"sandbox": ["simulate.max_questions=45"], "matrix": ["simulate.max_questions=24", "simulate.batch_questions=4"],
        "self_align": ["simulate.questions=assets/simulate/questions.txt", "simulate.max_questions=12", "simulate.batch_questions=4"]}
# One thread a process: ctest runs tests side by side on few cores, and OpenMP's spinning threads would make
# every process wait for the others.
ENV = dict(os.environ, OMP_NUM_THREADS="1")
TRAIN_FILE = {"sandbox": "sandbox_groups.json", "matrix": "matrix_sharegpt.json", "self_align": "self_align.json"}


def command(agora, method, out):
    return [agora, "simulate", "--config", os.path.join("recipes", RECIPES[method]), "closed_loop.rounds=0",
            f"output_dir={out}", "device=cpu", *SIZE[method]]


def run(agora, source, method, out):
    p = subprocess.run(command(agora, method, out), cwd=source, capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, p.stderr
    return p


def lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def read(path):
    with open(path) as f:
        return f.read()


def main():
    agora, source, scratch, method, kills = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    a, b, k = (os.path.join(scratch, name) for name in ("a", "b", "killed"))

    start = time.time()
    run(agora, source, method, a)
    seconds = time.time() - start
    summary = json.loads(read(os.path.join(a, "summary.json")))
    print(f"{method}: uninterrupted run {seconds:.1f} s, counts {summary['counts']}")
    print(f"{method}: throughput {json.dumps(summary['throughput'])}")
    assert summary["counts"]["records"] > 0, summary
    run(agora, source, method, b)
    for name in ("journal.jsonl", TRAIN_FILE[method]):
        assert read(os.path.join(a, name)) == read(os.path.join(b, name)), f"{name} differs between two runs"

    # SIGKILL at random moments, then run again until it finishes: each run is killed a random time after its
    # first new journal line, so every kill lands in a later chunk, in a different phase.
    rng = random.Random(7)
    journal = os.path.join(k, "journal.jsonl")
    killed = 0
    for attempt in range(kills):
        before = lines(journal)
        p = subprocess.Popen(command(agora, method, k), cwd=source, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=ENV)
        deadline = time.time() + 120
        while p.poll() is None and lines(journal) <= before and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.15))
        if p.poll() is None:
            p.kill()
            killed += 1
        p.wait()
        if os.path.exists(os.path.join(k, "summary.json")):
            break
    print(f"{method}: {killed} kills")
    assert killed >= 2, f"only {killed} runs were killed: the runs are too short for this test"
    run(agora, source, method, k)
    for name in ("journal.jsonl", TRAIN_FILE[method]):
        assert read(os.path.join(a, name)) == read(os.path.join(k, name)), f"{name} differs after kill and resume"

    journal = [json.loads(line) for line in open(os.path.join(a, "journal.jsonl"))]
    if method == "sandbox":
        for r in journal:
            assert all(x in "1234567" and len(x) == 1 for x in r["rating"]), r["rating"]
            for side in ("before", "after"):
                assert 1 <= r[f"gen_moral_score_{side}"] <= 7 and 1 <= r[f"gen_engagement_score_{side}"] <= 7, r
        logs = os.path.join(a, "logs", "world_0")
        out = os.path.join(scratch, "converted.json")
        files = sorted(os.path.join(logs, f) for f in os.listdir(logs))
        files.sort(key=lambda f: int(f.rsplit("_", 1)[1].split(".")[0]))
        p = subprocess.run([agora, "data", "sandbox-to-groups", "--out", out, "--seed", "1234", *files],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert read(out) == read(os.path.join(a, TRAIN_FILE[method])), "sandbox-to-groups of the logs differs"
    if method == "matrix":
        for r in journal:
            assert 2 <= len(r["roles"]) <= 3, r["roles"]
            assert all(e["plausible"] in (None, True, False) for e in r["trace"])
    print(f"{method}: OK")


if __name__ == "__main__":
    main()
