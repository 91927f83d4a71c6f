"""``python -m bench run``: one process per backend, going on past failures, ending in a table."""

import os
import subprocess
import sys
from pathlib import Path

from bench import backend, runner
from bench.backend import selected_backend

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "synthetic", "--train-samples", "64", "--test-samples", "64", "--maxlen", "20"]


def test_run_prints_status_and_comparison_table(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--backends", selected_backend(), "--profile", "smoke",
         "--device", "cpu", "--run-dir", str(tmp_path / "run"), "--", *TINY],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "KERASBENCH_RESULTS": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"| {selected_backend()} | ok |" in proc.stdout
    assert "PASSED" in proc.stdout  # progress lines from the backend's run
    assert len(list((tmp_path / "run").glob("*.json"))) == 1
    assert (tmp_path / "REPORT.md").exists()


def test_missing_and_failing_backends_do_not_stop_the_run(tmp_path, monkeypatch):
    def check(name):
        if name == "torch":
            raise backend.BackendError("torch is not installed")

    monkeypatch.setattr(backend, "check_backend", check)
    outcomes = runner.run_backends(["torch", "jax"], ["--profile", "nonexistent"], tmp_path)
    assert [o.backend for o in outcomes] == ["torch", "jax"]
    assert outcomes[0].status == "not installed"
    assert outcomes[1].status.startswith("failed (exit 4)") and "invalid choice" in outcomes[1].status
    assert "| torch | not installed |" in runner.summary(outcomes)


def test_unknown_backend_in_list_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--backends", "jax,mxnet"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown backend(s) mxnet" in proc.stderr
