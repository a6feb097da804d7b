"""The tiny closed loop of one method (recipes/closed_loop_<method>_tiny.yaml): K rounds of simulate -> train ->
eval leave each round's data, training run and eval, and the table of eval per round; running the same command
again changes nothing (every stage is complete) and prints the same table.

usage: check_closed_loop.py AGORA_BINARY SOURCE_DIR SCRATCH_DIR METHOD
"""
import json
import os
import shutil
import subprocess
import sys
import time


# One thread a process: ctest runs tests side by side on few cores (OpenMP's spinning threads would contend).
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def main():
    agora, source, scratch, method = sys.argv[1:5]
    shutil.rmtree(scratch, ignore_errors=True)
    cmd = [agora, "simulate", "--config", f"recipes/closed_loop_{method}_tiny.yaml", f"output_dir={scratch}",
           "device=cpu"]
    start = time.time()
    p = subprocess.run(cmd, cwd=source, capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, p.stderr[-4000:]
    print(f"{method}: closed loop in {time.time() - start:.1f} s\n{p.stdout}")
    table = json.load(open(os.path.join(scratch, "closed_loop.json")))["rounds"]
    assert [r["round"] for r in table] == [0, 1, 2], table
    for r in table:
        assert r["eval"]["tasks"][0]["n"] == 12, r
        m = r["eval"]["tasks"][0]["metrics"]
        assert all(0 <= m[k] <= 1 for k in ("acc", "acc_norm", "mc2")), m
    for k in (1, 2):
        d = os.path.join(scratch, f"round_{k}")
        summary = json.load(open(os.path.join(d, "data", "summary.json")))
        assert summary["counts"]["records"] > 0, summary
        finished = json.load(open(os.path.join(d, "train", "finished.json")))
        assert os.path.isdir(finished["checkpoint"]), finished
        assert os.path.exists(os.path.join(d, "eval.json"))
    # Each round simulates with the previous round's model.
    assert table[2]["model"] != table[0]["model"] or table[2]["adapter"] != table[0]["adapter"], table
    assert table[1]["adapter"] != table[2]["adapter"] or table[1]["model"] != table[2]["model"], table
    # Killed with SIGKILL once training has begun, then run again: the same table as the uninterrupted run.
    killed = scratch + "_killed"
    shutil.rmtree(killed, ignore_errors=True)
    kill_cmd = cmd[:-2] + [f"output_dir={killed}", "device=cpu"]
    p = subprocess.Popen(kill_cmd, cwd=source, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    while p.poll() is None and not os.path.exists(os.path.join(killed, "round_1", "train")):
        time.sleep(0.005)
    was_running = p.poll() is None
    p.kill()
    p.wait()
    assert was_running, "the loop ended before its first training stage began"
    p = subprocess.run(kill_cmd, cwd=source, capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, p.stderr[-4000:]
    resumed = json.load(open(os.path.join(killed, "closed_loop.json")))["rounds"]
    for a, b in zip(table, resumed):
        assert (a["records"], a["losses"], a["eval"]["tasks"][0]["metrics"]) == \
            (b["records"], b["losses"], b["eval"]["tasks"][0]["metrics"]), (a, b)
    print(f"{method}: killed in round 1's training and resumed: the same table")

    before = open(os.path.join(scratch, "closed_loop.json")).read()
    p = subprocess.run(cmd, cwd=source, capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, p.stderr[-4000:]
    assert "not simulated again" in p.stderr, p.stderr[-2000:]
    assert open(os.path.join(scratch, "closed_loop.json")).read() == before, "a rerun changed the table"
    print(f"{method}: OK")


if __name__ == "__main__":
    main()
