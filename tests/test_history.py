"""Runs of several processes in the report, medians over time (history), and pytest-benchmark's histogram."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import history, report, results
from tests.conftest import ROOT, run_cli
from tests.resultfiles import make_result, write_result

MACHINE = {"cpu_model": "Test CPU 1", "usable_cores": 2, "logical_cpus": 2, "threads": 2, "gpu": None,
           "gpu_driver": None, "os": "Linux-6", "python": "3.11.7", "backend": "jax", "backend_version": "1.0.0",
           "keras": "3.15.1"}


def run(folder, medians, *, day, commit="a" * 40, fingerprint=MACHINE, kinds=("train_step",), backend="jax"):
    """One run of len(medians) processes on 2026-11-<day>, each with 20 rounds around its median (seconds)."""
    rng = np.random.default_rng(day)
    for i, median in enumerate(medians):
        document = make_result(backend, kinds=kinds, run_id=f"run-{day}", repeat_index=i, fingerprint=fingerprint,
                               started=f"2026-11-{day:02d}T08:{i:02d}:00+00:00",
                               data={"train_step": list(median * (1 + 0.01 * rng.standard_normal(20)))})
        document["commit_info"] = {"id": commit, "dirty": False}
        write_result(folder, document, name=f"{backend}-{day:02d}-{i}.json")


# ------------------------------------------------------------------------------- several processes, one run

def test_report_shows_the_median_of_process_medians_with_its_interval(tmp_path):
    run(tmp_path, [0.300, 0.300, 0.300], day=1)  # an older run: not shown
    run(tmp_path, [0.100, 0.110, 0.120], day=2)
    rows = results.results_of(results.load([tmp_path])[0])
    [(_, [line])] = report.summarize(rows)
    assert line.processes == 3 and line.train_median_ms == pytest.approx(110, rel=0.02)
    low, high = line.train_ci_ms
    # The t interval of the typical process median: from 3 processes, wider than their range (a
    # bootstrap over the 3 stayed inside it and covered 76%).
    assert 80 < low < 100 and 120 < high < 150 and low <= line.train_median_ms <= high
    p50, p90, p99 = line.train_percentiles_ms
    assert p50 <= p90 <= p99 and p50 == pytest.approx(110, rel=0.05)
    text = report.render_markdown(rows)
    assert "| 3 (train 95% CI " in text and "Several processes per benchmark" in text
    assert "3 older result file(s) not shown" in text


def test_batch1_serving_is_shown_on_the_line_it_was_measured_beside(tmp_path):
    document = make_result("jax", kinds=("train_step", "predict_step"))
    serve = make_result("jax", kinds=("predict_step",), batch_size=1, predict=(0.002, 0.0001),
                        data={"predict_step": list(np.linspace(0.0019, 0.0031, 200))})
    bench = serve["benchmarks"][0]
    bench["name"], bench["extra_info"]["kind"] = "test_serve_batch1[jax-cpu]", "serve_batch1"
    document["benchmarks"].append(bench)
    write_result(tmp_path, document)
    rows = results.results_of(results.load([tmp_path])[0])
    [(group, [line])] = report.summarize(rows)
    assert group.batch_size == 32 and line.serve_queries == 200
    assert line.serve_percentiles_ms == pytest.approx(tuple(np.percentile(np.linspace(1.9, 3.1, 200), [50, 90, 99])))
    assert "(200 queries)" in report.render_markdown(rows)


# -------------------------------------------------------------------------------------------- history

def test_history_orders_runs_and_marks_a_sustained_step_not_a_spike(tmp_path):
    medians = [0.100, 0.101, 0.099, 0.125, 0.100, 0.115, 0.116, 0.114, 0.140]
    for day, median in enumerate(medians, start=1):
        run(tmp_path, [median, median], day=day, commit=f"{day:x}" * 40)
    runs, _ = results.load([tmp_path])
    [(name, _group)] = series = history.collect(runs)
    points = series[(name, _group)]
    history.mark_steps(points, threshold=0.10, sustain=2)
    assert [p.commit for p in points] == [f"{day:x}" * 12 for day in range(1, 10)]
    assert all(p.processes == 2 for p in points)
    steps = {i: p.step for i, p in enumerate(points) if p.step}
    assert steps[5].startswith("step +1") and 3 not in steps  # 0.125 alone is a spike
    assert steps[8].startswith("past threshold, unconfirmed")  # the last point: nothing follows yet
    assert points[1].change == pytest.approx(0.01, abs=0.01)


def test_history_says_when_the_machine_changed(tmp_path):
    run(tmp_path, [0.100], day=1)
    run(tmp_path, [0.150], day=2, fingerprint={**MACHINE, "cpu_model": "Other CPU"})
    run(tmp_path, [0.150], day=3, fingerprint={**MACHINE, "cpu_model": "Other CPU"})
    runs, _ = results.load([tmp_path])
    [points] = history.collect(runs).values()
    history.mark_steps(points)
    assert points[1].note.startswith("machine changed: Test CPU 1") and points[1].step.startswith("step +")


def test_history_cli_prints_and_plots(tmp_path):
    for day, median in enumerate([0.100, 0.100, 0.130, 0.131], start=1):
        run(tmp_path / "results", [median], day=day)
    done = run_cli("history", tmp_path / "results", "--plot", tmp_path / "history.png")
    assert done.returncode == 0, done.stderr
    assert "## test_train_step[jax-cpu]" in done.stdout and "| step +3" in done.stdout
    assert (tmp_path / "history.png").stat().st_size > 10_000
    done = run_cli("history", tmp_path / "results", "-k", "nomatch")
    assert done.returncode == 2 and "no benchmark with statistics matching 'nomatch'" in done.stderr


def test_pytest_benchmark_histogram_works_from_the_install(tmp_path):
    # pytest-benchmark's own `compare --histogram` needs pygal (the "report" extra).
    path = write_result(tmp_path, make_result("jax", data={"train_step": [0.1, 0.11, 0.12, 0.1, 0.105]}))
    tool = Path(sys.executable).with_name("pytest-benchmark")  # its console script, beside this interpreter
    done = subprocess.run([str(tool), "compare", str(path), "--histogram", str(tmp_path / "hist")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "hist.svg").read_text().startswith("<?xml")
