"""`agora generate --requests` end to end on the tiny model: the results of a run killed with SIGKILL and started
again equal those of an uninterrupted run (same ids, each once, same text and tokens); a torn last line is cut and
its request answered again; a bad request line is an error naming the line, or skipped and counted.

usage: check_generate_requests.py AGORA_BINARY MODEL_DIR SCRATCH_DIR
"""
import json
import os
import signal
import subprocess
import sys
import time


def write_requests(path, bad_line=False):
    with open(path, "w") as f:
        for i in range(300):
            r = {"id": f"r{i}", "prompt": "A principle: be " + "kind " * (i % 9) + f"number {i}",
                 "max_new_tokens": 24 + i % 9}
            if i % 3 == 1:
                r.update(temperature=0.9, top_p=0.95, seed=i)
            if i % 5 == 2:
                r["choices"] = ["yes", "no", "it depends"]
            if i % 7 == 3:
                r["integer_range"] = [1, 7]
            f.write(json.dumps(r) + "\n")
            if bad_line and i == 10:
                f.write('{"id": "bad", "prompt": "x", "temprature": 1.0}\n')


def run(agora, model, requests, out, *extra):
    return subprocess.Popen([agora, "generate", "--model", model, "--requests", requests, "--out", out,
                             "--device", "cpu", "--dtype", "float32", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def results(path):
    lines = [json.loads(line) for line in open(path)]
    ids = [r["id"] for r in lines]
    assert len(ids) == len(set(ids)), f"{path}: duplicate ids"
    return {r["id"]: r for r in lines}


def main():
    agora, model, scratch = sys.argv[1:4]
    os.makedirs(scratch, exist_ok=True)
    requests = os.path.join(scratch, "requests.jsonl")
    write_requests(requests)
    whole, resumed = os.path.join(scratch, "whole.jsonl"), os.path.join(scratch, "resumed.jsonl")
    for path in (whole, resumed):
        if os.path.exists(path):
            os.remove(path)

    p = run(agora, model, requests, whole)
    _, err = p.communicate()
    assert p.returncode == 0, err
    want = results(whole)
    assert len(want) == 300, len(want)
    choices = [r for i, r in want.items() if int(i[1:]) % 5 == 2 and int(i[1:]) % 7 != 3]
    assert all(r["text"] in ("yes", "no", "it depends") for r in choices), choices[:3]
    print(f"uninterrupted: 300 results; {err.strip().splitlines()[-1]}")

    # Kill -9 once a quarter of the results are written, then run again.
    p = run(agora, model, requests, resumed)
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        if os.path.exists(resumed) and sum(1 for _ in open(resumed)) >= 75:
            break
        time.sleep(0.005)
    assert p.poll() is None, "the run ended before it could be killed: make it longer"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    before = len(open(resumed).read().splitlines())
    # A torn line, as a kill in the middle of a write would leave.
    with open(resumed, "a") as f:
        f.write('{"id": "r299", "text": "half a li')
    p = run(agora, model, requests, resumed)
    _, err = p.communicate()
    assert p.returncode == 0, err
    print(f"killed after {before} results; the rerun: {err.strip().splitlines()[0]}")
    got = results(resumed)
    assert got.keys() == want.keys(), set(want) ^ set(got)
    different = [i for i in want if got[i] != want[i]]
    assert not different, f"{len(different)} results differ, e.g. {want[different[0]]} vs {got[different[0]]}"
    print("resumed run == uninterrupted run: 300 ids, each once, same texts and tokens")

    bad = os.path.join(scratch, "bad_requests.jsonl")
    write_requests(bad, bad_line=True)
    p = run(agora, model, bad, os.path.join(scratch, "bad_out.jsonl"))
    _, err = p.communicate()
    assert p.returncode == 1 and f"{bad}:12: unknown field 'temprature'" in err, err
    p = run(agora, model, bad, os.path.join(scratch, "bad_out.jsonl"), "--on_bad_line=skip", "--max_new_tokens=4")
    _, err = p.communicate()
    assert p.returncode == 0 and "(1 bad lines skipped)" in err, err
    print("a bad line names file:line; --on_bad_line=skip counts it")


if __name__ == "__main__":
    main()
