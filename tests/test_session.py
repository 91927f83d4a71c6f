"""A killed run keeps every benchmark finished before the kill, in a whole, valid file."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import results
from tests.conftest import ROOT


def start_run(results_dir: Path) -> subprocess.Popen:
    # Accuracy on 64 reviews finishes in seconds; the full profile's 200 predict and 100 train
    # rounds that follow keep the process busy long enough to be killed mid-run.
    args = ["--profile", "full", "--dataset", "synthetic", "--train-samples", "64", "--test-samples", "64",
            "--maxlen", "20", "--device", "cpu", "--results-dir", str(results_dir)]
    return subprocess.Popen([sys.executable, "-m", "pytest", "bench/", "-q", *args],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_result(results_dir: Path, proc: subprocess.Popen, timeout: float = 300) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        files = list(results_dir.glob("*.json"))
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
            proc.wait()
    [run] = results.load([tmp_path])[0]  # whole and valid, whenever the signal landed
    assert run.results
    return json.loads(path.read_text())


def test_sigkill_keeps_finished_benchmarks_and_marks_the_run_unfinished(tmp_path):
    doc = kill_after_first_benchmark(tmp_path, signal.SIGKILL)
    assert doc["kerasbench"]["finished"] is False
    assert [b["name"].split("[")[0] for b in doc["benchmarks"]][:1] == ["test_accuracy"]
    # A SIGKILL between a temp file's write and its rename may leave that temp file (nothing can
    # clean up after SIGKILL); readers never take it for a result: it is hidden and not *.json.
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert all(p.name.endswith(".tmp") for p in leftovers)


def test_sigterm_saves_and_records_the_interruption(tmp_path):
    doc = kill_after_first_benchmark(tmp_path, signal.SIGTERM)
    run = doc["kerasbench"]
    assert run["finished"] is False and run["exitstatus"] == 2  # pytest's "interrupted"
    assert doc["benchmarks"]
    assert not list(tmp_path.glob(".*.tmp")), "a temp file was left behind after a clean stop"
