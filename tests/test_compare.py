"""bench.compare: the gate that counts noise between processes, machines, the diff table, exports, the CLI."""

import dataclasses
import json
import math
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import calibrate, report, results, stats
from bench import compare as cmp
from bench.commands.options import confidence_level, fraction
from tests.conftest import run_cli as run_bench_cli
from tests.resultfiles import layout_document, make_result, write_result

MACHINE = {"cpu_model": "Test CPU 1", "usable_cores": 2, "logical_cpus": 2, "threads": 2, "gpu": None,
           "gpu_driver": None, "os": "Linux-6", "python": "3.11.7", "backend": "jax", "backend_version": "1.0.0",
           "keras": "3.15.1"}


def files(tmp_path, side, *documents):
    folder = tmp_path / side
    for document in documents:
        write_result(folder, document)
    return folder


def processes(tmp_path, side, medians, *, backend="jax", spread=0.01, rounds=30, seed=0, fingerprint=MACHINE,
              started_day=1, kinds=("train_step",), run_id=None, **settings):
    """One run of len(medians) processes: process i's train rounds scatter by ``spread`` around medians[i].

    Runs follow one another: each starts an hour after the folders already in ``tmp_path`` (a current
    side made after its baseline ran after it, not interleaved with it: compare.interleaved_blocks).
    """
    folder = tmp_path / side
    rng = np.random.default_rng(seed)
    run_id = run_id or f"{side}-{started_day}"
    hour = 8 + sum(1 for entry in tmp_path.iterdir() if entry.is_dir())
    for i, median in enumerate(medians):
        data = list(median * (1 + spread * rng.standard_normal(rounds)))
        started = f"2026-11-{started_day:02d}T{hour:02d}:{i:02d}:00+00:00"
        document = make_result(backend, kinds=kinds, data={"train_step": data}, run_id=run_id, repeat_index=i,
                               fingerprint=fingerprint, started=started, **settings)
        write_result(folder, document, name=f"{backend}-{run_id}-{i}.json")
    return folder


def verdicts(changes):
    return {(ch.name.split("[")[0], ch.metric): ch.verdict for ch in changes}


def latency(changes, kind="test_train_step"):
    [change] = [ch for ch in changes if ch.metric == "latency" and ch.name.startswith(kind)]
    return change


# ------------------------------------------------------------------------------------ the latency gate

def test_clear_slowdown_across_three_processes_a_side_is_a_regression(tmp_path):
    base = processes(tmp_path, "base", [0.100, 0.101, 0.099])
    cur = processes(tmp_path, "cur", [0.130, 0.131, 0.129], seed=1)
    changes, regressions = cmp.compare([base], [cur])
    [regression] = regressions
    assert regression.verdict == "REGRESSION (slower)" and regression.processes == (3, 3) and regression.gated
    assert regression.change == pytest.approx(30.0, abs=1.0)
    assert regression.test.low > 1 and regression.p_slower < 0.001
    assert regression.baseline == pytest.approx(100, rel=0.02)  # geometric mean of process medians, ms
    assert cmp.summarize(changes).exit_status == cmp.EXIT_REGRESSION


def test_one_process_a_side_shows_the_change_but_cannot_gate(tmp_path):
    # One process has no between-process spread: no test can count the noise that decides.
    base = files(tmp_path, "base", make_result("jax", train=(0.100, 0.004)))
    cur = files(tmp_path, "cur", make_result("jax", train=(0.130, 0.004)))
    changes, regressions = cmp.compare([base], [cur])
    assert regressions == []
    change = latency(changes)
    assert change.change == pytest.approx(30.0) and not change.gated and change.test is None
    assert change.verdict == "cannot gate: 1 vs 1 processes, needs 3 a side (--repeat 3)"
    changes, _ = cmp.compare([base], [cur], min_processes=1)  # Welch's test needs 2 whatever is asked
    assert latency(changes).verdict == "cannot gate: 1 vs 1 processes, needs 2 a side (--repeat 2)"
    two_base = processes(tmp_path, "two-base", [0.100, 0.101])
    two_cur = processes(tmp_path, "two-cur", [0.130, 0.131], seed=1)
    assert cmp.compare([two_base], [two_cur], min_processes=2)[1]  # from 2 a side the gate acts


def test_drift_between_processes_is_noise_not_a_regression(tmp_path):
    # Each process is tight (±1% rounds), but the current processes land 5%, 12% and 25% slower: the
    # geometric mean moved 14%, past the threshold, yet another draw of processes could move it anywhere.
    base = processes(tmp_path, "base", [0.100, 0.100, 0.100])
    cur = processes(tmp_path, "cur", [0.095, 0.112, 0.125], seed=1)
    changes, regressions = cmp.compare([base], [cur])
    change = latency(changes)
    assert regressions == [] and change.verdict == "within noise" and change.gated
    assert change.change == pytest.approx(10.4, abs=1.0) and change.test.low < 1 < change.test.high
    assert change.p_slower > 0.05


def test_significant_change_under_the_threshold_is_ok(tmp_path):
    base = processes(tmp_path, "base", [0.100, 0.100, 0.100], spread=0.002)
    cur = processes(tmp_path, "cur", [0.104, 0.104, 0.104], spread=0.002, seed=1)
    changes, regressions = cmp.compare([base], [cur], threshold=0.10)
    change = latency(changes)
    assert regressions == [] and change.verdict == "ok" and change.test.low > 1 and change.p_slower < 0.01
    assert cmp.compare([base], [cur], threshold=0.02)[1]  # past a 2% threshold it counts


def test_clear_speedup_is_faster(tmp_path):
    base = processes(tmp_path, "base", [0.100, 0.101, 0.099])
    cur = processes(tmp_path, "cur", [0.070, 0.071, 0.069], seed=1)
    changes, regressions = cmp.compare([base], [cur])
    assert regressions == [] and latency(changes).verdict == "faster" and latency(changes).test.high < 1


def test_faster_needs_significance_as_slower_does(tmp_path):
    # 12% faster on the geometric mean, but one current process is as slow as the baseline: not significant.
    base = processes(tmp_path, "base", [0.100, 0.100, 0.100])
    cur = processes(tmp_path, "cur", [0.100, 0.085, 0.080], seed=1)
    changes, _ = cmp.compare([base], [cur])
    change = latency(changes)
    assert change.change < -10 and change.test.high > 1 and change.verdict == "within noise"


def test_calibrated_noise_is_pooled_into_the_test(tmp_path):
    # 3 processes a side, 3% apart, with processes that disagree by about 3%: Welch on 4 degrees of
    # freedom cannot tell. This machine's calibrated noise (1% sd, 23 degrees of freedom) can.
    base = processes(tmp_path, "base", [0.100, 0.103, 0.097], spread=0.002)
    cur = processes(tmp_path, "cur", [0.103, 0.106, 0.100], spread=0.002, seed=1)
    changes, regressions = cmp.compare([base], [cur], threshold=0.0)
    assert regressions == [] and latency(changes).p_slower > 0.05
    key = calibrate.noise_key(results.results_of(results.load([cur])[0])[0])
    quiet = stats.ProcessNoise(0.01**2, 23)
    changes, regressions = cmp.compare([base], [cur], threshold=0.0, noise={key: quiet})
    change = latency(changes)
    assert [r.name for r in regressions] == [change.name] and change.noise == quiet
    # More df than Welch's 4, fewer than the calibration's 23 (counted once) and each side's 2 together.
    assert change.test.noise_df == 23 and 4 < change.test.df < 23 + 2 + 2
    loud = stats.ProcessNoise(0.05**2, 23)  # a machine whose processes disagree by 5%: not significant
    assert cmp.compare([base], [cur], threshold=0.0, noise={key: loud})[1] == []


def test_each_gated_line_says_what_slowdown_it_resolves(tmp_path):
    base = processes(tmp_path, "base", [0.100, 0.102, 0.099], spread=0.02)
    cur = processes(tmp_path, "cur", [0.101, 0.100, 0.102], spread=0.02, seed=1)
    changes, regressions = cmp.compare([base], [cur], threshold=0.0)
    change = latency(changes)
    assert regressions == [] and 0 < change.detects < 0.2
    # The same noise, a threshold past the statistical resolution: the threshold is what resolves.
    wide, _ = cmp.compare([base], [cur], threshold=0.30)
    assert latency(wide).detects > 0.30


def test_holm_spans_every_gated_line_of_the_comparison(tmp_path):
    # A modest slowdown on one backend, none on the other: alone the slowed line is significant at 5%,
    # but Holm over both lines (the family an A/A run could false-alarm in) tests it at 2.5%.
    base = processes(tmp_path, "base", [0.100, 0.103, 0.097], spread=0.002)
    processes(tmp_path, "base", [0.200, 0.202, 0.198], spread=0.002, backend="torch")
    cur = processes(tmp_path, "cur", [0.1062, 0.1094, 0.1030], spread=0.002, seed=1)
    processes(tmp_path, "cur", [0.199, 0.203, 0.200], spread=0.002, seed=1, backend="torch")
    changes, _ = cmp.compare([base], [cur], threshold=0.0)
    jax_line = next(ch for ch in changes if ch.metric == "latency" and "jax" in ch.name)
    assert jax_line.test.p_slower < 0.05  # alone: significant
    assert jax_line.p_slower == pytest.approx(min(1.0, 2 * jax_line.test.p_slower))  # Holm's first step: x m
    assert jax_line.verdict == "within noise" and jax_line.p_slower > 0.05
    text = cmp.render_comparison(changes, "plain", threshold=0.0)
    assert "Holm over the 2 gated latency line(s)" in text and "family-wise false-alarm rate <= 5%" in text


def test_different_machines_are_not_comparable(tmp_path):
    other = {**MACHINE, "cpu_model": "Other CPU 9"}
    base = processes(tmp_path, "base", [0.100, 0.101, 0.099])
    cur = processes(tmp_path, "cur", [0.130, 0.131, 0.129], seed=1, fingerprint=other)
    changes, regressions = cmp.compare([base], [cur])
    assert regressions == []
    assert latency(changes).verdict == "not comparable: CPU model differs: Test CPU 1 vs Other CPU 9"
    assert latency(changes).change == pytest.approx(30.0, abs=1.0)  # still shown


def test_version_changes_are_marked_on_the_line(tmp_path):
    base = processes(tmp_path, "base", [0.100, 0.101, 0.099])
    cur = processes(tmp_path, "cur", [0.100, 0.101, 0.099], seed=1,
                    fingerprint={**MACHINE, "python": "3.12.1", "os": "Linux-7"})
    changes, regressions = cmp.compare([base], [cur])
    assert regressions == [] and latency(changes).verdict == "ok"
    assert "Python 3.11.7 → 3.12.1" in latency(changes).note and "OS Linux-6 → Linux-7" in latency(changes).note


def test_newest_run_with_all_its_processes_is_compared(tmp_path):
    processes(tmp_path, "base", [0.5, 0.5, 0.5], started_day=1)
    base = processes(tmp_path, "base", [0.100, 0.101, 0.099], started_day=2)
    cur = processes(tmp_path, "cur", [0.100, 0.100, 0.101], seed=1)
    changes, regressions = cmp.compare([base], [cur])
    assert regressions == [] and latency(changes).processes == (3, 3)
    assert latency(changes).baseline == pytest.approx(100, rel=0.02)


def test_an_ab_of_settings_pairs_by_name_and_says_what_differed(tmp_path):
    base = processes(tmp_path, "base", [0.100, 0.101, 0.099], maxlen=200)
    cur = processes(tmp_path, "cur", [0.110, 0.111, 0.109], seed=1, maxlen=220)
    baseline, current = (results.results_of(results.load([side])[0]) for side in (base, cur))
    changes, _ = cmp.compare_results(baseline, current)
    assert {ch.verdict for ch in changes} == {"new", "missing"}  # other groups: not paired by default
    paired, notes = cmp.pair_by_name(baseline, current)
    assert notes == {"test_train_step[jax-cpu]": "paired by name: maxlen 200 → 220"}
    changes, regressions = cmp.compare_results(baseline, paired, threshold=0.05)
    assert [ch.verdict for ch in regressions] == ["REGRESSION (slower)"] and regressions[0].processes == (3, 3)
    assert current[0].context.maxlen == 220  # the results themselves are left as they were

    text, summary = cmp.gate(baseline, current, threshold=0.05, match="name", style="plain")
    assert [ch.verdict for ch in summary.regressions] == ["REGRESSION (slower)"]
    assert "paired by name: maxlen 200 → 220" in text and "1 regression(s)" in text
    assert summary.exit_status == cmp.EXIT_REGRESSION

def test_benchmarks_match_only_within_their_group(tmp_path):
    base = files(tmp_path, "base", make_result("jax", profile="quick", train=(0.1, 0.001)))
    cur = files(tmp_path, "cur", make_result("jax", profile="smoke", train=(0.5, 0.001)),
                make_result("torch", profile="quick"))
    changes, regressions = cmp.compare([base], [cur])
    assert regressions == []
    assert {ch.verdict for ch in changes} == {"new", "missing"}
    text = cmp.render_comparison(changes)
    assert "## quick profile" in text and "## smoke profile" in text
    # The sides share no line: nothing was compared, which is never "no regressions".
    assert "No regressions" not in text and "NOT GATED: the two sides share no line" in text
    assert cmp.summarize(changes).exit_status == cmp.EXIT_NOT_GATED


def test_lines_that_could_not_be_gated_are_counted_and_never_called_no_regressions(tmp_path):
    # A new user's first try: one result file against a copy with every timing 30% slower.
    base = files(tmp_path, "base", make_result("jax", train=(0.100, 0.004), predict=(0.050, 0.002)))
    cur = files(tmp_path, "cur", make_result("jax", train=(0.130, 0.004), predict=(0.065, 0.002)))
    changes, regressions = cmp.compare([base], [cur])
    summary = cmp.summarize(changes)
    assert regressions == [] and summary.exit_status == cmp.EXIT_NOT_GATED == 3
    assert len(summary.not_gated) == 3 and summary.gated == [ch for ch in changes if ch.metric == "val_accuracy"]
    text = cmp.render_comparison(changes, "plain")
    assert "No regressions" not in text
    assert ("NOT GATED: 3 of 4 shared line(s) could not be gated: 3 x cannot gate: 1 vs 1 processes, needs 3 a side "
            "(--repeat 3)") in text
    # Some lines gated, one not: still not a pass.
    gated_base = processes(tmp_path, "gb", [0.100, 0.101, 0.099])
    processes(tmp_path, "gb", [0.200], backend="torch")
    gated_cur = processes(tmp_path, "gc", [0.100, 0.101, 0.099], seed=1)
    processes(tmp_path, "gc", [0.200], backend="torch", seed=1)
    changes, _ = cmp.compare([gated_base], [gated_cur])
    summary = cmp.summarize(changes)
    assert len(summary.gated) == 1 and len(summary.not_gated) == 1 and summary.exit_status == cmp.EXIT_NOT_GATED
    assert "1 of 2 shared line(s) could not be gated" in cmp.render_comparison(changes)
    # Every shared line gated, one more line on one side only: a pass that names the extra line.
    new_cur = processes(tmp_path, "nc", [0.100, 0.101, 0.099], seed=1)
    processes(tmp_path, "nc", [0.200], backend="torch", seed=1)
    changes, _ = cmp.compare([processes(tmp_path, "jax-only", [0.100, 0.101, 0.099])], [new_cur])
    summary = cmp.summarize(changes)
    assert summary.exit_status == cmp.EXIT_OK and len(summary.unshared) == 1
    text = cmp.render_comparison(changes)
    assert "No regressions in 1 gated line(s)" in text and "On one side only, not compared: 1 new" in text


def test_two_modes_are_said_out_loud_and_not_pooled(tmp_path):
    # Two-threaded PyTorch here: a process runs at about 330 or 400 ms and stays there.
    rng = np.random.default_rng(4)
    modes = lambda fast: list(np.where(np.arange(12) < fast, 0.330, 0.400) * np.exp(0.005 * rng.standard_normal(12)))
    base = processes(tmp_path, "base", modes(4), backend="torch")
    cur = processes(tmp_path, "cur", modes(4), backend="torch", seed=1)
    changes, regressions = cmp.compare([base], [cur])
    change = latency(changes)
    assert regressions == [] and not change.gated and change.test is None and change.modes is not None
    assert change.verdict.startswith("cannot gate: the process medians fall into two modes")
    assert "bimodal (dip test p = " in change.note
    for side in ("baseline", "current"):
        assert re.search(side + r" 4 of 12 processes near 33\d ms, 8 near (39\d|40\d) ms", change.note)
    assert cmp.summarize(changes).exit_status == cmp.EXIT_NOT_GATED
    # One mode a side is a shift between the sides, not two modes: gated as usual.
    fast = processes(tmp_path, "fast", modes(12), backend="torch", seed=2)
    slow = processes(tmp_path, "slow", modes(0), backend="torch", seed=3)
    changes, regressions = cmp.compare([fast], [slow])
    assert latency(changes).modes is None and [r.verdict for r in regressions] == ["REGRESSION (slower)"]


def test_differences_besides_the_code_are_noted(tmp_path):
    base = files(tmp_path, "base", make_result("jax", train=(0.5, 0.001), started="2026-01-01T00:00:00+00:00"),
                 make_result("jax", train=(0.1, 0.001), started="2026-02-01T00:00:00+00:00"))
    cur = files(tmp_path, "cur", make_result("jax", train=(0.1, 0.001), keras="3.16.0", finished=False))
    changes, regressions = cmp.compare([base], [cur])
    assert regressions == []
    assert "keras 3.15.1 → 3.16.0" in changes[0].note and "current run incomplete" in changes[0].note
    assert latency(changes).baseline == pytest.approx(100)  # the newer of two single-process runs


def test_the_header_names_the_packages_that_differ_between_the_sides(tmp_path):
    base_set, head_set = ["keras==3.14.1", "jax==0.10.2"], ["keras==3.15.1", "jax==0.10.2", "rich==15.0.0"]
    base = files(tmp_path, "base", make_result("jax", packages=base_set))
    cur = files(tmp_path, "cur", make_result("jax", packages=head_set),
                make_result("torch", packages=head_set, started="2026-11-29T09:00:00+00:00"))
    baseline, current = (results.results_of(results.load([side])[0]) for side in (base, cur))
    assert cmp.package_header(baseline, current) == "Packages: keras 3.14.1 → 3.15.1, +rich 15.0.0.\n\n"
    assert cmp.package_header(current, current) == ""
    mixed = files(tmp_path, "mixed", make_result("jax", packages=base_set),
                  make_result("torch", packages=head_set, started="2026-11-29T09:00:00+00:00"))
    mixed_results = results.results_of(results.load([mixed])[0])
    assert cmp.package_header(current, mixed_results) == ("Packages: the same sets on both sides. Note: the current "
                                                          "processes ran on 2 different package sets.\n\n")
    unrecorded = results.results_of(results.load([files(tmp_path, "old", make_result("jax"))])[0])
    assert cmp.package_header(unrecorded, current) == ""
    done = run_bench_cli("compare", str(base), str(cur), "--noise", "none", timeout=120)
    assert done.stdout.startswith("Packages: keras 3.14.1 → 3.15.1, +rich 15.0.0.\n\n## ")


# ----------------------------------------------------------------------------------------------- accuracy

def test_accuracy_drop_is_a_regression_and_a_small_one_is_not(tmp_path):
    base = files(tmp_path, "base", make_result("jax", accuracy=0.80))
    cur = files(tmp_path, "cur", make_result("jax", accuracy=0.75))
    _, regressions = cmp.compare([base], [cur])
    assert [(r.metric, r.verdict) for r in regressions] == [("val_accuracy", "REGRESSION (accuracy)")]
    assert regressions[0].change == pytest.approx(-5.0)
    _, regressions = cmp.compare([base], [cur], accuracy_drop=0.06)
    assert regressions == []
    exactly = files(tmp_path, "exactly", make_result("jax", accuracy=0.78))
    assert cmp.compare([base], [exactly])[1] == []  # a drop of exactly the tolerance passes


def test_failed_training_is_an_accuracy_regression(tmp_path):
    base = files(tmp_path, "base", make_result("jax"))
    cur = files(tmp_path, "cur", make_result("jax", accuracy=None, status="failed: loss is nan at epoch 1"))
    _, regressions = cmp.compare([base], [cur])
    assert [r.verdict for r in regressions] == ["REGRESSION (training failed)"]
    assert "loss is nan" in regressions[0].note


# ----------------------------------------------------------------------------------------------- output

@pytest.mark.parametrize("style", ["md", "plain"])
def test_diff_table(tmp_path, style):
    base = processes(tmp_path, "base", [0.100, 0.101, 0.099])
    cur = processes(tmp_path, "cur", [0.130, 0.131, 0.129], seed=1)
    changes, _ = cmp.compare([base], [cur])
    text = cmp.render_comparison(changes, style)
    assert "REGRESSION (slower)" in text and "3 vs 3" in text and "Detects ≥ (80%)" in text
    row = next(line for line in text.splitlines() if "REGRESSION" in line)
    assert "1.3e-05" in row and "1.299 [1.269, 1.330]" in row  # Holm-adjusted p; ratio and its Welch interval
    assert "1 regression(s)" in text.splitlines()[-2] and "at least 3 processes a side" in text.splitlines()[-1]
    assert ("| Benchmark |" in text) == (style == "md")


def test_github_action_benchmark_export_shape(tmp_path):
    rows = results.results_of(results.load([files(tmp_path, "cur", make_result("jax"))])[0])
    exported = cmp.github_action_benchmark(rows)
    assert set(exported) == {"customSmallerIsBetter", "customBiggerIsBetter"}
    for entries in exported.values():
        for entry in entries:
            assert {"name", "unit", "value"} <= set(entry) <= {"name", "unit", "value", "range", "extra"}
            assert isinstance(entry["name"], str) and isinstance(entry["unit"], str)
            assert isinstance(entry["value"], int | float)
            assert all(isinstance(entry[k], str) for k in ("range", "extra") if k in entry)
    smaller = {e["name"]: e for e in exported["customSmallerIsBetter"]}
    train = smaller["test_train_step[jax-cpu] (quick, synthetic, batch 32, maxlen 200) latency"]
    assert train["unit"] == "ms" and train["value"] == pytest.approx(100) and train["range"] == "± 2.0000"
    assert "machine: machine not recorded" in train["extra"]
    assert {e["unit"] for e in exported["customBiggerIsBetter"]} == {"accuracy", "samples/s"}
    assert len({e["name"] for e in exported["customBiggerIsBetter"]}) == len(exported["customBiggerIsBetter"])
    written = cmp.write_github_action_benchmark(rows, tmp_path / "gab")
    assert json.loads(written[0].read_text()) == exported[written[0].stem]


def test_exports_give_one_entry_per_benchmark_of_a_repeated_run(tmp_path):
    rows = results.results_of(results.load([processes(tmp_path, "cur", [0.100, 0.110, 0.120])])[0])
    [latency_entry] = cmp.github_action_benchmark(rows)["customSmallerIsBetter"]
    assert latency_entry["value"] == pytest.approx(110, rel=0.02)
    assert "median of 3 process medians (90 rounds)" in latency_entry["extra"]
    assert "Test CPU 1, 2 usable cores, 2 threads, no GPU" in latency_entry["extra"]
    [(_, measures)] = cmp.bencher_metric_format(rows).items()
    assert measures["latency"]["lower_value"] <= measures["latency"]["value"] <= measures["latency"]["upper_value"]


def test_bencher_metric_format_export_shape(tmp_path):
    rows = results.results_of(results.load([files(tmp_path, "cur", make_result("jax"))])[0])
    document = cmp.bencher_metric_format(rows)
    assert len(document) == 3
    for measures in document.values():
        for measure in measures.values():
            assert "value" in measure and set(measure) <= {"value", "lower_value", "upper_value"}
            assert all(isinstance(v, float) for v in measure.values())
    train = document["test_train_step[jax-cpu] (quick, synthetic, batch 32, maxlen 200)"]
    assert train["latency"] == pytest.approx({"value": 1e8, "lower_value": 0.98e8, "upper_value": 1.02e8})  # ns
    assert train["throughput"]["value"] == pytest.approx(320)
    assert document["test_accuracy[jax-cpu] (quick, synthetic, batch 32, maxlen 200)"]["accuracy"] == {"value": 0.8}
    path = cmp.write_bencher(rows, tmp_path / "bmf.json")
    assert json.loads(path.read_text()) == json.loads(json.dumps(document))


@pytest.mark.parametrize(("text", "value"), [("10%", 0.10), ("0.1", 0.1), (" 2.5% ", 0.025), ("0", 0.0),
                                             ("150%", 1.5)])
def test_fraction_parses(text, value):
    assert fraction(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["10", "abc", "-5%", "nan"])
def test_fraction_refuses(text):
    with pytest.raises(Exception, match=repr(text).strip("'")):
        fraction(text)


@pytest.mark.parametrize("text", ["100%", "0", "1.5"])
def test_confidence_level_refuses(text):
    with pytest.raises(Exception, match=r"not a confidence level|ambiguous"):
        confidence_level(text)


def run_cli(*args):
    return run_bench_cli("compare", *map(str, args))


def test_cli_exit_codes_noise_file_and_exports(tmp_path):
    base = processes(tmp_path, "base", [0.100, 0.101, 0.099])
    slow = processes(tmp_path, "slow", [0.130, 0.131, 0.129], seed=1)
    done = run_cli(base, slow, "--export-github-action", tmp_path / "gab", "--export-bencher", tmp_path / "bmf.json",
                   "--noise", "none")
    assert done.returncode == 1, done.stderr
    assert "REGRESSION (slower)" in done.stdout
    assert (tmp_path / "gab" / "customSmallerIsBetter.json").exists()
    assert (tmp_path / "gab" / "customBiggerIsBetter.json").exists() and (tmp_path / "bmf.json").exists()
    assert run_cli(base, slow, "--threshold", "50%", "--noise", "none").returncode == 0
    calibration = tmp_path / "calibration.json"
    [found] = [r for r in results.results_of(results.load([slow])[0]) if r.kind == "train_step"][:1]
    # This machine's processes disagree by 40% (sd of log medians): a 30% change on 3 a side is noise here.
    calibrate.write(calibration, MACHINE, [calibrate.Calibration(calibrate.noise_key(found), 12, 100.0, 0.4**2, 11,
                                                                 1.5)], "test")
    done = run_cli(base, slow, "--noise", calibration)
    assert done.returncode == 0 and "within noise" in done.stdout, done.stdout
    assert "calibrated noise: 1 benchmark(s) from" in done.stderr
    assert run_cli(base, base, "--format", "plain", "--noise", "none").returncode == 0
    one = files(tmp_path, "one", make_result("jax", train=(0.100, 0.004)))
    done = run_cli(one, one, "--noise", "none")  # nothing could be gated: neither pass nor regression
    assert done.returncode == cmp.EXIT_NOT_GATED and "NOT GATED" in done.stdout and "No regressions" not in done.stdout


def test_cli_usage_errors(tmp_path):
    base = files(tmp_path, "base", make_result("jax"))
    (tmp_path / "empty").mkdir()
    done = run_cli(base, tmp_path / "empty")
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"python -m bench compare: error: no readable results in current {tmp_path / 'empty'}"
    assert run_cli(base, tmp_path / "nowhere").returncode == 2
    done = run_cli(base, base, "--threshold", "10")
    assert done.returncode == 2 and "ambiguous: write 10% or 0.1" in done.stderr
    done = run_cli(base, base, "--noise", tmp_path / "missing.json")
    assert done.returncode == 2 and "no calibration file" in done.stderr


# ------------------------------------------------------------------------------- property test

durations = st.floats(min_value=1e-5, max_value=100.0, allow_nan=False, allow_infinity=False)
spreads = st.floats(min_value=0.0, max_value=1.0)  # IQR as a fraction of the median
runs = st.lists(
    st.tuples(st.sampled_from(["jax", "torch", "tensorflow"]), st.sampled_from(["quick", "smoke"]),
              durations, spreads, durations, spreads,
              st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0)), st.booleans(), st.integers(0, 2)),
    min_size=1, max_size=5)


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(runs)
def test_report_never_crashes_and_a_run_never_regresses_against_itself(generated):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i, (backend, profile, train, train_iqr, predict, predict_iqr, accuracy, finished,
                repeat) in enumerate(generated):
            document = make_result(backend, profile=profile, train=(train, train * train_iqr),
                                   predict=(predict, predict * predict_iqr), accuracy=accuracy, finished=finished,
                                   started=f"2026-11-29T08:00:{i:02d}+00:00", run_id=f"run{i // 2}",
                                   repeat_index=repeat)
            write_result(folder, document, name=f"run{i}.json")
        runs_, warnings = results.load([folder])
        assert warnings == []
        rows = results.results_of(runs_)
        for fmt_name in report.FORMATS:
            assert report.render(rows, fmt_name, warnings)
        changes, regressions = cmp.compare([folder], [folder], min_processes=1)
        assert regressions == []
        assert all(ch.verdict in ("ok", "no data") or ch.verdict.startswith("cannot gate") for ch in changes)
        summary = cmp.summarize(changes)
        text = cmp.render_comparison(changes, "plain")
        assert ("No regressions" in text) == (summary.exit_status == cmp.EXIT_OK) == (not summary.not_gated)


# ----------------------------------------------------------------------------- files without NaN

def strict_json(text):
    def refuse(token):
        raise AssertionError(f"{token} token in a written JSON file")

    return json.loads(text, parse_constant=refuse)


def test_exports_write_null_not_nan(tmp_path):
    write_result(tmp_path, make_result("jax"))
    runs, _ = results.load([tmp_path])
    nan = float("nan")
    broken = []
    for r in results.results_of(runs):  # as if a benchmark had measured NaN and Infinity
        stats = dataclasses.replace(r.stats, stddev=nan, iqr=math.inf)
        metrics = (dataclasses.replace(r.record.metrics, harness_vs_plain=nan, samples_per_s=-math.inf)
                   if r.step else r.record.metrics)
        broken.append(dataclasses.replace(r, stats=stats, record=dataclasses.replace(r.record, metrics=metrics)))
    written = [cmp.write_bencher(broken, tmp_path / "bencher.json"),
               *cmp.write_github_action_benchmark(broken, tmp_path / "action")]
    report.write_report(broken, fmt_name="json", output=tmp_path / "report.json")
    report.write_report(broken, fmt_name="csv", output=tmp_path / "report.csv")
    for path in [*written, tmp_path / "report.json"]:
        strict_json(path.read_text())
    strict_json(report.render(broken, "json"))  # printed JSON too: it is redirected into files
    csv_text = (tmp_path / "report.csv").read_text()
    assert not {"nan", "inf", "-inf", "NaN", "Infinity"} & set(csv_text.replace("\n", ",").split(","))


def test_compare_never_pairs_simulated_with_real_devices(tmp_path):
    base = write_result(tmp_path, layout_document("dp2", 0.8, simulated=True), "base.json")
    cur = write_result(tmp_path, layout_document("dp2", 0.8, simulated=False, train=(0.5, 0.004)), "cur.json")
    changes, regressions = cmp.compare([base], [cur])
    assert not regressions  # 5x slower, but a simulated layout is no baseline for real devices
    assert [c.verdict for c in changes] == [cmp.SIMULATED_VERDICT]
    same = write_result(tmp_path, layout_document("dp2", 0.8, simulated=True, train=(0.5, 0.004)), "same.json")
    [change] = cmp.compare([base], [same])[0]  # like with like is still compared
    assert change.verdict != cmp.SIMULATED_VERDICT and change.change == pytest.approx(400)


def test_a_change_in_time_shows_the_change_in_the_share_of_the_bound_beside_it(tmp_path):
    for side, median in (("base", 0.100), ("cur", 0.050)):
        (tmp_path / side).mkdir()
        write_result(tmp_path / side, make_result("jax", kinds=("train_step",), train=(median, 0.002),
                                                  roofline=True))
    changes, _ = cmp.compare([tmp_path / "base"], [tmp_path / "cur"])
    (change,) = changes
    assert "share of bound 0.10 (compute) → 0.20 (compute)" in change.note


def _blocks(tmp_path, name, factors, minute_of, drift=(1.00, 1.10, 0.94, 1.08, 0.97, 1.09, 0.95)):
    """One side of a run: process i at 0.100 s x drift[i] x factors[i], started at minute ``minute_of(i)``."""
    for i, (level, factor) in enumerate(zip(drift, factors, strict=True)):
        document = make_result("jax", kinds=("train_step",), train=(0.100 * level * factor, 0.001), run_id=name,
                               repeat_index=i, started=f"2026-11-01T08:{minute_of(i):02d}:00+00:00")
        write_result(tmp_path / name, document, name=f"{name}-{i}.json")
    return tmp_path / name


def test_an_interleaved_run_is_paired_by_block_and_two_runs_in_a_row_are_not(tmp_path):
    # ab's order: block i runs base then head (head then base when i is odd), and block i + 1 after it.
    slower = [1.040, 1.045, 1.035, 1.040, 1.042, 1.038, 1.041]
    base = _blocks(tmp_path, "base", [1.0] * 7, lambda i: 4 * i + i % 2)
    head = _blocks(tmp_path, "head", slower, lambda i: 4 * i + 1 - i % 2)
    [line], regressions = cmp.compare([base], [head])
    assert line.test.paired and regressions == [line]
    [rule] = [text for text in cmp.summary_lines(cmp.summarize([line])) if text.startswith("Rule:")]
    assert rule.startswith("Rule: latency: paired t test on log process medians, each base process with the head "
                           "process of its interleaved block, one-sided")
    # The same head processes, run after the whole baseline: no blocks, so Welch's test, where the drift is noise.
    later = _blocks(tmp_path, "later", slower, lambda i: 40 + i)
    [line], regressions = cmp.compare([base], [later])
    assert not line.test.paired and regressions == [] and line.verdict == "within noise"
    # A process missing on one side: no blocks either.
    (head / "head-3.json").unlink()
    [line], _ = cmp.compare([base], [head])
    assert not line.test.paired and line.processes == (7, 6)
    assert cmp.interleaved_blocks([], []) is None
