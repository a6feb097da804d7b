"""What the process-level checks of `agora train` share (check_train_resume.py, check_hardening.py): fresh run
folders, a run with the exit status it must have, and reading what a run wrote."""

import os
import shutil
import subprocess
import sys


def run_dir(work, name):
    """WORK/NAME, emptied."""
    path = os.path.join(work, name)
    shutil.rmtree(path, ignore_errors=True)
    return path


def run_expecting(cmd, cwd, env, timeout, expect_rc):
    """Runs cmd; exits the check with its output unless it ends with status expect_rc."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != expect_rc:
        sys.exit(f"agora train exited {proc.returncode}, expected {expect_rc}\n{proc.stdout}\n{proc.stderr}")
    return proc


def read(path):
    with open(path, "rb") as f:
        return f.read()


def log_text(out):
    with open(os.path.join(out, "log.txt")) as f:
        return f.read()
