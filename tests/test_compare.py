"""bench.compare: the noise-aware regression gate, the diff table, CI exports, the CLI exit codes."""

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import compare as cmp
from bench import report, results
from bench.__main__ import fraction
from tests.conftest import run_cli as run_bench_cli
from tests.resultfiles import make_result, write_result


def files(tmp_path, side, *documents):
    folder = tmp_path / side
    for document in documents:
        write_result(folder, document)
    return folder


def verdicts(changes):
    return {(ch.name.split("[")[0], ch.metric): ch.verdict for ch in changes}


def test_clear_slowdown_with_tight_spread_is_a_regression(tmp_path):
    base = files(tmp_path, "base", make_result("jax", train=(0.100, 0.004)))
    cur = files(tmp_path, "cur", make_result("jax", train=(0.130, 0.004)))
    changes, regressions = cmp.compare([base], [cur])
    assert [(r.name, r.metric) for r in regressions] == [("test_train_step[jax-cpu]", "latency")]
    assert regressions[0].change == pytest.approx(30.0) and regressions[0].verdict == "REGRESSION (slower)"
    assert verdicts(changes)[("test_predict_step", "latency")] == "ok"


def test_one_round_timings_are_shown_but_not_gated(tmp_path):
    # One-epoch times of the same code moved 12% between two runs here: no spread, no gate.
    base = files(tmp_path, "base", make_result("torch", epoch=(100.0, 0.0)))
    cur = files(tmp_path, "cur", make_result("torch", epoch=(150.0, 0.0)))
    changes, regressions = cmp.compare([base], [cur])
    assert not regressions
    assert verdicts(changes)[("test_accuracy", "latency")] == "not gated (too few rounds)"


def test_slowdown_inside_the_spread_is_not_a_regression(tmp_path):
    # 15% slower, past the threshold, but the IQRs overlap (Q1 0.0915 < baseline Q3 0.115).
    base = files(tmp_path, "base", make_result("jax", train=(0.100, 0.030)))
    cur = files(tmp_path, "cur", make_result("jax", train=(0.115, 0.047)))
    changes, regressions = cmp.compare([base], [cur])
    assert regressions == []
    assert verdicts(changes)[("test_train_step", "latency")] == "within noise"


def test_slowdown_under_the_threshold_is_not_a_regression(tmp_path):
    base = files(tmp_path, "base", make_result("jax", train=(0.100, 0.001)))
    cur = files(tmp_path, "cur", make_result("jax", train=(0.108, 0.001)))
    changes, regressions = cmp.compare([base], [cur], threshold=0.10)
    assert regressions == [] and verdicts(changes)[("test_train_step", "latency")] == "ok"
    _, regressions = cmp.compare([base], [cur], threshold=0.05)
    assert len(regressions) == 1


def test_clear_speedup_is_reported_faster(tmp_path):
    base = files(tmp_path, "base", make_result("jax", train=(0.100, 0.004)))
    cur = files(tmp_path, "cur", make_result("jax", train=(0.070, 0.004)))
    changes, regressions = cmp.compare([base], [cur])
    assert regressions == [] and verdicts(changes)[("test_train_step", "latency")] == "faster"


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


def test_benchmarks_match_only_within_their_group(tmp_path):
    base = files(tmp_path, "base", make_result("jax", profile="quick", train=(0.1, 0.001)))
    cur = files(tmp_path, "cur", make_result("jax", profile="smoke", train=(0.5, 0.001)),
                make_result("torch", profile="quick"))
    changes, regressions = cmp.compare([base], [cur])
    assert regressions == []
    assert {ch.verdict for ch in changes} == {"new", "missing"}
    text = cmp.render_comparison(changes)
    assert "## quick profile" in text and "## smoke profile" in text and "No regressions" in text


def test_newest_run_on_each_side_is_compared_and_differences_are_noted(tmp_path):
    base = files(tmp_path, "base", make_result("jax", train=(0.5, 0.001), started="2026-01-01T00:00:00+00:00"),
                 make_result("jax", train=(0.1, 0.001), started="2026-02-01T00:00:00+00:00"))
    cur = files(tmp_path, "cur", make_result("jax", train=(0.1, 0.001), keras="3.16.0", finished=False))
    changes, regressions = cmp.compare([base], [cur])
    assert regressions == []
    assert "keras 3.15.1 → 3.16.0" in changes[0].note and "current run incomplete" in changes[0].note


@pytest.mark.parametrize("style", ["md", "plain"])
def test_diff_table(tmp_path, style):
    base = files(tmp_path, "base", make_result("jax", train=(0.100, 0.004)))
    cur = files(tmp_path, "cur", make_result("jax", train=(0.130, 0.004)))
    changes, _ = cmp.compare([base], [cur])
    text = cmp.render_comparison(changes, style)
    assert "REGRESSION (slower)" in text and "+30.0%" in text and "100 ms [98.0-102]" in text
    assert "1 regression(s)" in text.splitlines()[-1]
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
    assert {e["unit"] for e in exported["customBiggerIsBetter"]} == {"accuracy", "samples/s"}
    assert len({e["name"] for e in exported["customBiggerIsBetter"]}) == len(exported["customBiggerIsBetter"])
    written = cmp.write_github_action_benchmark(rows, tmp_path / "gab")
    assert json.loads(written[0].read_text()) == exported[written[0].stem]


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


def run_cli(*args):
    return run_bench_cli("compare", *map(str, args))


def test_cli_exit_codes_and_exports(tmp_path):
    base = files(tmp_path, "base", make_result("jax", train=(0.100, 0.004)))
    slow = files(tmp_path, "slow", make_result("jax", train=(0.130, 0.004)))
    done = run_cli(base, slow, "--export-github-action", tmp_path / "gab", "--export-bencher", tmp_path / "bmf.json")
    assert done.returncode == 1, done.stderr
    assert "REGRESSION (slower)" in done.stdout
    assert (tmp_path / "gab" / "customSmallerIsBetter.json").exists()
    assert (tmp_path / "gab" / "customBiggerIsBetter.json").exists() and (tmp_path / "bmf.json").exists()
    assert run_cli(base, slow, "--threshold", "50%").returncode == 0
    assert run_cli(base, base, "--format", "plain").returncode == 0


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


# ------------------------------------------------------------------------------- property test

durations = st.floats(min_value=1e-5, max_value=100.0, allow_nan=False, allow_infinity=False)
spreads = st.floats(min_value=0.0, max_value=1.0)  # IQR as a fraction of the median
runs = st.lists(
    st.tuples(st.sampled_from(["jax", "torch", "tensorflow"]), st.sampled_from(["quick", "smoke"]),
              durations, spreads, durations, spreads,
              st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0)), st.booleans()),
    min_size=1, max_size=5)


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(runs)
def test_report_never_crashes_and_a_run_never_regresses_against_itself(generated):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i, (backend, profile, train, train_iqr, predict, predict_iqr, accuracy, finished) in enumerate(generated):
            document = make_result(backend, profile=profile, train=(train, train * train_iqr),
                                   predict=(predict, predict * predict_iqr), accuracy=accuracy, finished=finished,
                                   started=f"2026-11-29T08:00:{i:02d}+00:00")
            write_result(folder, document, name=f"run{i}.json")
        runs_, warnings = results.load([folder])
        assert warnings == []
        rows = results.results_of(runs_)
        for fmt_name in report.FORMATS:
            assert report.render(rows, fmt_name, warnings)
        changes, regressions = cmp.compare([folder], [folder])
        assert regressions == []
        assert all(ch.verdict in ("ok", "no data") for ch in changes)
        assert cmp.render_comparison(changes, "plain")
