"""A killed run keeps every benchmark finished before the kill, in a whole, valid file."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_run(results: Path) -> subprocess.Popen:
    # Accuracy on 64 reviews finishes in seconds; the full profile's 200 predict and 100 train
    # rounds that follow keep the process busy long enough to be killed mid-run.
    args = ["--profile", "full", "--dataset", "synthetic", "--train-samples", "64", "--test-samples", "64",
            "--device", "cpu", "--results-dir", str(results)]
    return subprocess.Popen([sys.executable, "-m", "pytest", "bench/", "-q", "-p", "no:cacheprovider", *args],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_result(results: Path, proc: subprocess.Popen, timeout: float = 300) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        files = list(results.glob("*.json"))
        if files:
            return files[0]
        time.sleep(0.2)
    raise AssertionError("no result file appeared")


def kill_after_first_benchmark(tmp_path: Path, sig: signal.Signals) -> dict:
    proc = start_run(tmp_path)
    try:
        path = wait_for_result(tmp_path, proc)
        os.kill(proc.pid, sig)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list(tmp_path.glob(".*.tmp")), "a temp file was left behind"
    return json.loads(path.read_text())


def test_sigkill_keeps_finished_benchmarks_and_marks_the_run_unfinished(tmp_path):
    doc = kill_after_first_benchmark(tmp_path, signal.SIGKILL)
    assert doc["kerasbench"]["finished"] is False
    assert [b["name"].split("[")[0] for b in doc["benchmarks"]][:1] == ["test_accuracy"]


def test_sigterm_saves_and_records_the_interruption(tmp_path):
    doc = kill_after_first_benchmark(tmp_path, signal.SIGTERM)
    run = doc["kerasbench"]
    assert run["finished"] is False and run["exitstatus"] == 2  # pytest's "interrupted"
    assert doc["benchmarks"]
