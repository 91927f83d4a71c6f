"""``python -m bench explain``: the train step split into phases, Keras against native (bench/phases.py)."""

import json

import pytest

from bench import results
from tests.conftest import run_cli


def test_explain_splits_keras_and_native_train_steps_into_phases_that_add_up(tmp_path):
    done = run_cli("explain", "--backends", "torch", "--profile", "smoke", "--maxlen", "20", "--device", "cpu",
                   "--threads", "1", "--dataset", "synthetic", "--run-dir", str(tmp_path), timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs, _ = results.load([tmp_path])
    found = {r.kind: r for r in results.results_of(runs)}
    assert set(found) == {"train_step", "native_train_step"}  # explain runs the train steps only
    for r in found.values():
        p = r.step.phases
        parts = p.forward_s + p.backward_s + p.optimizer_s + p.overhead_s
        assert parts == pytest.approx(p.step_s, rel=1e-9)  # the phases add up to the step timed beside them
        assert p.forward_s > 0 and p.rounds == 5 and p.measured_median_s == r.stats.median
        assert p.adds_up == (abs(p.step_s / p.measured_median_s - 1) <= p.tolerance)
        assert p.op_families_s["matmul"] > 0 and "torch.profiler" in p.profiler
    assert "## Where the time goes (train step)" in (tmp_path / "REPORT.md").read_text()
    assert "Where the time goes" in done.stdout
    assert list(tmp_path.glob("breakdown_*.png"))
    raw = json.loads(next(tmp_path.glob("torch-cpu-smoke_*.json")).read_text())
    assert all("phases" in b["extra_info"]["metrics"] for b in raw["benchmarks"])


def test_without_explain_nothing_is_split(tmp_path):
    from tests.resultfiles import make_result, write_result

    write_result(tmp_path, make_result("torch", kinds=("train_step",)))
    (r,) = results.results_of(results.load([tmp_path])[0])
    assert r.step.phases is None
