"""Runs of several processes in the report, medians over time (history), and pytest-benchmark's histogram."""

import math
import subprocess
import sys
from datetime import datetime
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


# ------------------------------------------------------------ the rule at its edges, the points' fields, output

def point(median_ms, *, started="2026-11-01T08:00:00+00:00", machine="CPU A", key="a", versions="keras 3, jax 1"):
    return history.Point(started=started, commit="c" * 12, machine=machine, machine_key=key, versions=versions,
                         median_ms=median_ms, processes=2, files=["f.json"])


def steps(medians, **rule):
    points = [point(m) for m in medians]
    history.mark_steps(points, **rule)
    return [p.step for p in points]


def test_a_step_is_past_the_threshold_not_at_it():
    # 125 / 100 - 1 and 75 / 100 - 1 are exactly 0.25 and -0.25 in floating point.
    assert steps([100.0, 125.0, 125.0], threshold=0.25) == ["", "", ""]
    assert steps([100.0, 75.0, 75.0], threshold=0.25) == ["", "", ""]
    assert steps([100.0, 126.0, 126.0], threshold=0.25) == ["", "step +26.0%", ""]
    assert steps([100.0, 74.0, 74.0], threshold=0.25) == ["", "step -26.0%", ""]


def test_flat_points_are_no_steps_and_one_point_can_be_a_step():
    assert steps([100.0, 101.0, 99.0, 100.0]) == ["", "", "", ""]
    assert steps([100.0, 130.0, 100.0], sustain=1) == ["", "step +30.0%", "step -23.1%"]
    assert steps([100.0, 100.0, 130.0]) == ["", "", "past threshold, unconfirmed (a step needs 2 points)"]
    with pytest.raises(ValueError, match=r"^sustain must be at least 1$"):
        steps([100.0], sustain=0)


def test_the_level_restarts_after_a_step():
    # After the step to 120, the level is the median since it (120): 140 is +16.7% against it, not +40%.
    assert steps([100.0, 120.0, 120.0, 140.0, 140.0]) == ["", "step +20.0%", "", "step +16.7%", ""]


def test_a_point_says_what_changed_since_the_previous_one():
    moved = dict(machine="CPU B", key="b", versions="keras 3, jax 2")
    points = [point(100.0), point(100.0, **moved), point(100.0, **moved)]
    history.mark_steps(points)
    assert points[1].note == "machine changed: CPU A → CPU B; keras 3, jax 1 → keras 3, jax 2"
    assert points[2].note == "" and points[1].change == 0.0


def test_collect_orders_benchmarks_by_group_then_name_and_filters_by_name(tmp_path):
    for batch_size, kinds in ((64, ("predict_step",)), (32, ("train_step", "predict_step"))):
        document = make_result("jax", kinds=kinds, batch_size=batch_size, started="2026-11-01T08:00:00+00:00")
        document["commit_info"] = {"id": "b" * 40, "dirty": True}
        write_result(tmp_path, document, name=f"jax-{batch_size}.json")
    runs, _ = results.load([tmp_path])
    keys = [(name.split("[")[0], group.batch_size) for name, group in history.collect(runs)]
    assert keys == [("test_predict_step", 32), ("test_train_step", 32), ("test_predict_step", 64)]
    assert [(name.split("[")[0], group.batch_size) for name, group in history.collect(runs, "train")] == [
        ("test_train_step", 32)]
    [p] = history.collect(runs, "train")[next(iter(history.collect(runs, "train")))]
    assert p.commit == "b" * 12 + "+dirty" and p.versions == "keras 3.15.1, jax 1.0.0"
    assert p.machine == "Test CPU (no fingerprint)" and p.machine_key == "Test CPU"


def test_a_point_without_a_commit_says_unknown(tmp_path):
    document = make_result("jax", kinds=("train_step",), fingerprint=MACHINE)
    document["commit_info"] = {}
    write_result(tmp_path, document)
    [points] = history.collect(results.load([tmp_path])[0]).values()
    assert points[0].commit == "unknown" and points[0].machine == "Test CPU 1, 2 usable cores, 2 threads, no GPU"


def series_of_two():
    from bench.results import GroupKey

    group = GroupKey("quick", "synthetic", 32, 200, "cpu")
    first = point(100.0, started="2026-11-01T08:00:00+00:00")
    second = point(1234.5, started="2026-11-02T09:30:00+00:00", machine="CPU B", key="b")
    second.change, second.step, second.note = 0.1, "step +10.0%", "machine | changed"
    return {("test_x[jax-cpu]", group): [first, second]}


def test_render_is_one_table_per_benchmark():
    header = "| Date | Commit | Machine | Versions | Median ms | Processes | Change | Step | Note |"
    assert history.render(series_of_two()) == "\n".join([
        "## test_x[jax-cpu] · quick profile · synthetic data · batch 32 · maxlen 200 · cpu", "",
        header, "|---|---|---|---|---|---|---|---|---|",
        "| 2026-11-01 08:00:00 | cccccccccccc | CPU A | keras 3, jax 1 | 100 | 2 | — |  |  |",
        "| 2026-11-02 09:30:00 | cccccccccccc | CPU B | keras 3, jax 1 | 1234 | 2 | +10.0% | step +10.0% | "
        "machine \\| changed |", ""])
    plain = history.render(series_of_two(), style="plain").splitlines()
    assert plain[0] == "test_x[jax-cpu] · quick profile · synthetic data · batch 32 · maxlen 200 · cpu"
    assert plain[2].split() == ["Date", "Commit", "Machine", "Versions", "Median", "ms", "Processes", "Change",
                                "Step", "Note"]
    assert history.render({}) == "No benchmarks with statistics in these files.\n"


def test_render_csv_has_one_row_per_point():
    assert history.render_csv(series_of_two()) == (
        "name,group,started,commit,machine,versions,median_ms,processes,change,step,note,files\n"
        "test_x[jax-cpu],quick-synthetic-bs32-len200-cpu,2026-11-01T08:00:00+00:00,cccccccccccc,CPU A,"
        '"keras 3, jax 1",100.0,2,,,,f.json\n'
        "test_x[jax-cpu],quick-synthetic-bs32-len200-cpu,2026-11-02T09:30:00+00:00,cccccccccccc,CPU B,"
        '"keras 3, jax 1",1234.5,2,0.1,step +10.0%,machine | changed,f.json\n')


# ------------------------------------------------------------------------------- selection's small rules

def step_result(tmp_path, name, *, data=None, tail=None, fingerprint=None, batch_size=32):
    import dataclasses

    from bench.results import Tail

    document = make_result("jax", kinds=("train_step",), data={"train_step": data} if data else None,
                           fingerprint=fingerprint, batch_size=batch_size)
    [r] = results.results_of(results.load([write_result(tmp_path, document, name=name)])[0])
    if data is None:
        r = dataclasses.replace(r, stats=dataclasses.replace(r.stats, data=()))
    if tail is not None:
        metrics = dataclasses.replace(r.record.metrics, tail=Tail(*tail, "test"))
        r = dataclasses.replace(r, record=dataclasses.replace(r.record, metrics=metrics))
    return r


def test_the_tail_pools_rounds_only_when_every_process_has_them(tmp_path):
    from bench import selection

    with_rounds = step_result(tmp_path, "a.json", data=[0.1, 0.2, 0.3], tail=(0.5, 0.6, 0.7))
    without = step_result(tmp_path, "b.json", tail=(0.1, 0.2, 0.3))
    another = step_result(tmp_path, "c.json", tail=(0.3, 0.4, 0.8))
    assert selection._tail_ms([with_rounds]) == pytest.approx((200.0, 280.0, 298.0))  # numpy's percentiles, in ms
    # Some processes without rounds: the median of every process's recorded percentiles instead.
    assert selection._tail_ms([with_rounds, without, another]) == pytest.approx((300.0, 400.0, 700.0))
    assert selection._tail_ms([without]) == pytest.approx((100.0, 200.0, 300.0))
    assert selection._tail_ms([step_result(tmp_path, "d.json")]) is None
    assert selection.rounds_of(with_rounds) == [0.1, 0.2, 0.3]
    assert selection.rounds_of(without) == [without.stats.median]


def test_groups_sort_by_their_text_and_the_first_fingerprint_is_the_machine(tmp_path):
    from bench import selection

    small = step_result(tmp_path, "a.json", batch_size=32)
    large = step_result(tmp_path, "b.json", batch_size=100, fingerprint=MACHINE)
    assert [g.batch_size for g in selection.by_group([small, large])] == [100, 32]  # "100" < "32"
    assert selection.measured_on([small, large]) == MACHINE and selection.measured_on([small]) is None


def test_a_result_without_a_readable_start_sorts_first_and_lines_keep_their_own_newest_run(tmp_path):
    import dataclasses

    from bench import selection

    r = step_result(tmp_path, "a.json")
    undated = dataclasses.replace(r, run=dataclasses.replace(r.run, started="not a time"))
    assert selection.started_order(undated) == (-math.inf, r.file)
    assert selection.started_order(r) == (datetime.fromisoformat(r.run.started).timestamp(), r.file)
    assert selection.started_order(undated) < selection.started_order(r)
    for day, backend in ((1, "jax"), (2, "torch")):
        document = make_result(backend, kinds=("train_step",), started=f"2026-11-0{day}T08:00:00+00:00")
        write_result(tmp_path / "runs", document, name=f"{backend}.json")
    found = results.results_of(results.load([tmp_path / "runs"])[0])
    assert sorted(x.run.backend for x in selection.latest(found)) == ["jax", "torch"]  # one line each


def test_render_shows_every_benchmark_and_every_file():
    series = series_of_two()
    [(key, points)] = series.items()
    points[1].files = ["f.json", "g.json"]
    series[("test_y[jax-cpu]", key[1])] = points[:1]
    text = history.render(series)
    assert text.count("## test_") == 2
    assert "f.json g.json\n" in history.render_csv(series)
