"""Does accuracy hold across backends: seeds, the statistics (bench.stats), parity verdicts, the report's
parity section, compare's seed-spread rule, progress lines, and one tiny multi-seed `bench run`."""

from __future__ import annotations

import argparse
import copy
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from bench import compare as cmp
from bench import parity, plots, report, results, stats, tables, training
from bench.backends import selected_backend
from bench.settings import from_options, seed_list
from tests.conftest import run_cli
from tests.resultfiles import make_result, write_result

# Measured accuracies, quick profile (5,000 reviews, 1 epoch, seeds 0 to 4, 2-core AMD EPYC).
TF = [0.817, 0.801, 0.729, 0.780, 0.793]
JAX = [0.802, 0.796, 0.825, 0.795, 0.781]
TORCH = [0.823, 0.796, 0.796, 0.795, 0.783]


# ------------------------------------------------------------------------------------------ stats

@given(st.lists(st.floats(min_value=0, max_value=1), min_size=2, max_size=30))
def test_mean_interval_holds_the_mean_and_widens_with_confidence(values):
    narrow, wide = stats.mean_interval(values, 0.95), stats.mean_interval(values, 0.99)
    assert narrow.low <= narrow.estimate <= narrow.high
    assert wide.low <= narrow.low + 1e-12 and wide.high >= narrow.high - 1e-12


def test_mean_interval_edges():
    assert stats.mean_interval([0.8]).low is None
    flat = stats.mean_interval([0.8, 0.8, 0.8])
    assert (flat.low, flat.high) == (0.8, 0.8)
    tf = stats.mean_interval(TF)
    assert tf.estimate == pytest.approx(0.784) and tf.high - tf.low == pytest.approx(
        2 * sps.t.ppf(0.975, 4) * np.std(TF, ddof=1) / np.sqrt(5))
    with pytest.raises(ValueError):
        stats.mean_interval([])


def test_welch_difference_is_antisymmetric_and_holds_the_difference():
    ab, ba = stats.welch_difference(JAX, TF), stats.welch_difference(TF, JAX)
    assert ab.estimate == pytest.approx(-ba.estimate) and ab.low == pytest.approx(-ba.high)
    assert ab.low < ab.estimate < ab.high and not ab.excludes(0.0)
    assert stats.welch_difference([0.9, 0.91, 0.92], [0.7, 0.71, 0.72]).excludes(0.0)
    assert stats.welch_difference([0.9], TF).low is None


def test_mlperf_drops_the_fastest_and_slowest():
    assert stats.trimmed_mean_mlperf([5.0, 1.0, 3.0, 2.0, 4.0]) == 3.0
    assert stats.trimmed_mean_mlperf([10.0, 1.0, 2.0, 3.0]) == 2.5
    assert stats.trimmed_mean_mlperf(list(range(49))) == pytest.approx(24.0)  # one cut each end, not zero
    assert stats.trimmed_mean_mlperf([1.0, 2.0]) is None


def test_equivalence_verdicts():
    rng = np.random.default_rng(0)
    same = rng.normal(0.80, 0.002, 10)
    assert stats.equivalence(same, same + 0.001, 0.01).verdict == stats.EQUIVALENT
    apart = stats.equivalence(same + 0.05, same, 0.01)
    assert apart.verdict == stats.DIFFERENT and apart.p_equal < 0.05
    # These draws: neither equal nor different with 5 seeds; more seeds would tell.
    unsure = stats.equivalence(TF, JAX, 0.01)
    assert unsure.verdict == stats.UNDECIDED and unsure.seeds_needed > 5
    one = stats.equivalence([0.8], JAX, 0.01)
    assert one.verdict == stats.UNDECIDED and one.seeds_needed is None and "2 seeds" in one.reason
    assert stats.equivalence([1, 1, 1], [1, 1], 0.5).verdict == stats.EQUIVALENT
    assert stats.equivalence([2, 2, 2], [1, 1], 0.5).verdict == stats.DIFFERENT


def test_seeds_needed_is_the_smallest_count_with_enough_power():
    n = stats.seeds_needed(0.002, 0.02, 0.01)
    assert stats.tost_power(n, 0.002, 0.02, 0.01) >= 0.8 > stats.tost_power(n - 1, 0.002, 0.02, 0.01)
    assert stats.seeds_needed(0.002, 0.04, 0.01) > n  # more spread, more seeds
    m = stats.seeds_needed(0.03, 0.02, 0.01)  # beyond the margin: seeds to show the difference is real
    assert stats.difference_power(m, 0.03, 0.02) >= 0.8 > stats.difference_power(m - 1, 0.03, 0.02)
    assert stats.seeds_needed(0.0, 0.02, 0.0) is None


def test_tost_power_is_a_conservative_bound_by_simulation():
    # Simulate TOST at the planned seed count: it must show equivalence at least as often as planned.
    rng = np.random.default_rng(1)
    n = stats.seeds_needed(0.0, 0.01, 0.01)
    shown = sum(stats.equivalence(rng.normal(0, 0.01, n), rng.normal(0, 0.01, n), 0.01).verdict == stats.EQUIVALENT
                for _ in range(300))
    assert shown / 300 >= 0.75  # 0.8 planned; 300 draws leave about ±0.023 of noise


# ----------------------------------------------------------------------------------------- parity

def seeded_run(backend: str, finals: list[float], *, seconds: float = 10.0, first: list[float] | None = None,
               started: str = "2026-11-29T08:00:00+00:00", seeds: list[int] | None = None,
               dataset_info: dict | None = None, status: str = "ok", **kwargs) -> dict:
    """A run whose accuracy benchmark ran once per seed: 2 epochs, final val_accuracy ``finals``."""
    document = make_result(backend, kinds=("accuracy",), started=started, target_accuracy=0.70, **kwargs)
    [template] = document["benchmarks"]
    label = template["param"]
    first = first or [0.75] * len(finals)
    benchmarks = []
    for seed, final, early in zip(seeds or range(len(finals)), finals, first, strict=False):
        bench = copy.deepcopy(template)
        bench["name"] = f"test_accuracy[{label}-seed{seed}]"
        info = bench["extra_info"]
        info["context"]["seed"] = seed
        info["context"]["epochs"] = 2
        if dataset_info:
            info["context"]["dataset"] = dataset_info
        history = [{"epoch": e, "seconds": seconds, "loss": 0.5, "accuracy": v, "val_loss": 0.4 + e / 10,
                    "val_accuracy": v} for e, v in ((1, early), (2, final))]
        reached = next((i for i, h in enumerate(history) if h["val_accuracy"] >= 0.70), None)
        info["metrics"].update(status=status, history=history if status == "ok" else [],
                               final_val_accuracy=final if status == "ok" else None,
                               time_to_accuracy_s=None if reached is None else seconds * (reached + 1))
        benchmarks.append(bench)
    document["benchmarks"] = benchmarks
    return document


def analyzed(tmp_path, *documents, **kwargs):
    for document in documents:
        write_result(tmp_path, document)
    runs, _ = results.load([tmp_path])
    return parity.analyze(results.results_of(runs), **kwargs)


def test_per_backend_means_intervals_and_pairwise_verdicts(tmp_path):
    [group] = analyzed(tmp_path, seeded_run("tensorflow", TF, seconds=50), seeded_run("jax", JAX, seconds=45),
                       seeded_run("torch", [v + 0.10 for v in TORCH], seconds=120))
    by_label = {b.label.split()[0]: b for b in group.backends}
    assert [r.seed for r in by_label["jax"].runs] == [0, 1, 2, 3, 4]
    assert by_label["tensorflow"].accuracy.estimate == pytest.approx(np.mean(TF))
    assert by_label["tensorflow"].mlperf_seconds == 50.0
    verdicts = {(v.first.split()[0], v.second.split()[0], v.metric): v.verdict for v in group.pairs}
    assert verdicts["jax", "tensorflow", "val_accuracy"].startswith("not enough seeds to tell: ~")
    assert verdicts["jax", "torch", "val_accuracy"] == "different"  # 10 points apart, tight spread
    assert verdicts["jax", "tensorflow", "epochs"] == "equivalent within ±10%"  # every seed at epoch 1
    assert verdicts["jax", "torch", "seconds"] == "different"  # 45 s against 120 s, no spread
    text = "\n".join(parity.render_markdown([group]))
    assert "| jax 1.0.0 | 5 (0 to 4) | 0.802 0.796 0.825 0.795 0.781 |" in text
    assert "TOST" in text and "±1 pt" in text


def test_equal_backends_are_equivalent_and_the_margin_is_the_users(tmp_path):
    close = [0.800, 0.801, 0.799, 0.800, 0.802]
    [group] = analyzed(tmp_path, seeded_run("jax", close), seeded_run("torch", [v + 0.003 for v in close]))
    assert [v.verdict for v in group.pairs if v.metric == "val_accuracy"] == ["equivalent within ±1 pt"]
    [strict] = parity.analyze(results.results_of(results.load([tmp_path])[0]), margin=0.001)
    assert [v.verdict for v in strict.pairs if v.metric == "val_accuracy"] == ["different"]


def test_seeds_pool_across_files_and_a_rerun_seed_keeps_its_newest_result(tmp_path):
    [group] = analyzed(tmp_path, seeded_run("jax", [0.70, 0.71], seeds=[0, 1]),
                       seeded_run("jax", [0.72], seeds=[2], started="2026-11-29T09:00:00+00:00"),
                       seeded_run("jax", [0.90], seeds=[0], started="2026-11-29T10:00:00+00:00"))
    [jax] = group.backends
    assert {r.seed: r.final_val_accuracy for r in jax.runs} == {0: 0.90, 1: 0.71, 2: 0.72}


def test_runs_of_other_sizes_are_kept_apart_and_failed_seeds_are_shown(tmp_path):
    groups = analyzed(tmp_path, seeded_run("jax", JAX), seeded_run("jax", JAX, profile="full"),
                      seeded_run("torch", [0.8, 0.8], status="failed: training loss became nan at epoch 1, step 3"))
    assert len(groups) == 2
    quick = next(g for g in groups if g.key.group.profile == "quick")
    torch = next(b for b in quick.backends if b.label.startswith("torch"))
    assert torch.ok_runs == [] and torch.accuracy is None
    assert "seed 0 failed" in "\n".join(parity.render_markdown([quick]))


def test_unreached_targets_are_counted(tmp_path):
    [group] = analyzed(tmp_path, seeded_run("jax", [0.75, 0.65, 0.72], first=[0.6, 0.6, 0.6]))
    [jax] = group.backends
    assert jax.values("epochs") == [2, 2] and len(jax.values("val_accuracy")) == 3
    assert "2 of 3 reached" in "\n".join(parity.render_markdown([group]))


@pytest.mark.parametrize(("text", "value"), [("1pt", 0.01), ("0.5 pt", 0.005), ("2%", 0.02), ("0.01", 0.01)])
def test_margin_parses(text, value):
    assert parity.margin_points(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["1", "-1pt", "one", ""])
def test_margin_refuses(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parity.margin_points(text)


# ----------------------------------------------------------------------------- report and plots

ACLIMDB = {"source": "aclimdb", "origin": "aclImdb_v1.tar.gz", "train_samples": 5000, "test_samples": 2000,
           "maxlen": 200, "vocabulary_size": 81098, "tokenizer_version": 1}


def test_report_has_a_parity_section_only_with_several_seeds(tmp_path):
    one = tmp_path / "one"
    write_result(one, make_result("jax"))
    write_result(one, make_result("torch"))
    rows = results.results_of(results.load([one])[0])
    assert "Does accuracy hold across backends?" not in report.render_markdown(rows)
    several = tmp_path / "several"
    write_result(several, seeded_run("jax", JAX, dataset_info=ACLIMDB, dataset="aclimdb"))
    write_result(several, seeded_run("torch", TORCH, dataset_info=ACLIMDB, dataset="aclimdb"))
    rows = results.results_of(results.load([several])[0])
    text = report.render_markdown(rows, margin=0.02)
    assert "## Does accuracy hold across backends?" in text and "±2 pt" in text
    assert "mean of 5 seeds: 0.750 → 0.800 (see parity)" in text
    assert ("aclimdb archive, kerasbench tokenizer v1, 81,098-word vocabulary (Keras's imdb.npz: 88,584)"
            in text)
    document = json.loads(report.render(rows, "json"))
    assert len(document["parity"]) == 1 and len(document["parity"][0]["pairs"]) == 3
    assert {row["seed"] for row in document["rows"]} == {0, 1, 2, 3, 4}
    written = plots.plot(rows, tmp_path / "plots")
    assert any(p.name.startswith("curves_") for p in written)


def test_archive_data_records_its_tokenizer(tmp_path):
    from bench import aclimdb
    from bench.data import load_imdb
    from tests.imdb_archive import write_archive

    archive = write_archive(tmp_path / "aclImdb_v1.tar.gz")
    info = load_imdb("aclimdb", path=archive, maxlen=20, cache_dir=tmp_path / "cache").info()
    assert info["tokenizer_version"] == aclimdb.TOKENIZER_VERSION and info["vocabulary_size"] > 0
    assert f"kerasbench tokenizer v{aclimdb.TOKENIZER_VERSION}, {info['vocabulary_size']}-word" in (
        tables.data_description(info))


def test_data_sources_are_named():
    assert tables.data_description({"source": "keras"}).startswith("Keras's imdb.npz")
    assert "synthetic" in tables.data_description({"source": "synthetic"})
    assert "tokenizer version not recorded" in tables.data_description({"source": "aclimdb"})


def test_cli_parity(tmp_path):
    write_result(tmp_path, seeded_run("jax", JAX))
    write_result(tmp_path, seeded_run("tensorflow", TF))
    done = run_cli("parity", str(tmp_path), "--margin", "5pt", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "# Does accuracy hold across backends?" in done.stdout and "equivalent within ±5 pt" in done.stdout


# ---------------------------------------------------------------------------------------- compare

def test_compare_judges_the_seeds_of_a_line_together(tmp_path):
    base, wide, tight = tmp_path / "base", tmp_path / "wide", tmp_path / "tight"
    write_result(base, seeded_run("jax", JAX))
    write_result(wide, seeded_run("jax", TF))  # 1.6 points lower on average, inside the seed spread
    write_result(tight, seeded_run("jax", [v - 0.05 for v in JAX]))
    changes, regressions = cmp.compare([base], [wide], accuracy_drop=0.01)
    [accuracy] = [ch for ch in changes if ch.metric == "val_accuracy"]
    assert accuracy.name == "test_accuracy[jax-cpu]" and accuracy.verdict == "within seed spread"
    assert regressions == [] and "5 vs 5 seeds" in accuracy.note
    _, regressions = cmp.compare([base], [tight], accuracy_drop=0.01)
    assert [r.verdict for r in regressions] == ["REGRESSION (accuracy)"]


def test_compare_with_one_seed_keeps_the_plain_rule_and_says_so(tmp_path):
    base, cur = tmp_path / "base", tmp_path / "cur"
    write_result(base, make_result("jax", accuracy=0.80))
    write_result(cur, make_result("jax", accuracy=0.75))
    _, [regression] = cmp.compare([base], [cur])
    assert regression.verdict == "REGRESSION (accuracy)" and "cannot judge seed spread" in regression.note


# -------------------------------------------------------------------------------------- settings

def options(**given) -> dict:
    return {"profile": "quick", "variant": "default", "dataset": "synthetic", "imdb_path": None, "device": "cpu",
            "batch_size": None, "maxlen": None, "epochs": None, "train_samples": None, "test_samples": None,
            "threads": 1, "seed": None, "seeds": None, "results_dir": None, **given}


def test_seed_lists_and_counts():
    assert seed_list("5") == (0, 1, 2, 3, 4) and str(seed_list("5")) == "0,1,2,3,4"
    assert seed_list("7,3") == (7, 3)
    for bad in ("0", "1,1", "1,-2", "1001", ","):
        with pytest.raises(argparse.ArgumentTypeError):
            seed_list(bad)


def test_which_seeds_a_run_trains():
    assert from_options(options().get).accuracy_seeds == (1337,)
    parity_run = from_options(options(profile="parity").get)
    assert parity_run.accuracy_seeds == (0, 1, 2, 3, 4) and parity_run.profile.step_benchmarks is False
    assert parity_run.model.epochs == 2 and parity_run.train_samples == 5000
    assert from_options(options(profile="parity", seed=9).get).accuracy_seeds == (9,)
    assert from_options(options(seeds=seed_list("2")).get).describe()["seeds"] == [0, 1]
    with pytest.raises(ValueError, match="not both"):
        from_options(options(seed=1, seeds=seed_list("2")).get)


# -------------------------------------------------------------------------------------- progress

class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_writes_at_most_once_per_interval_and_estimates_the_time_left():
    clock, lines = Clock(), []
    progress = training.Progress(lines.append, epochs=2, label="jax-cpu seed 3", every_s=1.0, clock=clock)
    progress.begin_epoch(1, 10)
    for step in range(1, 11):
        clock.now += 0.25
        progress.train_step(step, 0.5)
    assert len(lines) == 3  # steps 1, 5 and 9: a line at most once a second
    assert lines[0].startswith(training.PROGRESS_PREFIX + " jax-cpu seed 3 · epoch 1/2 · step 1/10 · loss 0.5000")
    assert lines[-1].endswith("~3 s left")  # 9 of 20 steps took 2.25 s: 11 more take about 2.75 s
    progress.train_step(3, 9.9)  # a worker thread finishing late does not move progress back
    assert "step 10/10" in progress.line() and "loss 0.5000" in progress.line()
    progress.validation_step(4)
    assert "validating batch 4" in progress.line()


def test_progress_survives_a_closed_terminal():
    def closed(line: str) -> None:
        raise BrokenPipeError

    progress = training.Progress(closed, epochs=1, clock=Clock())
    progress.begin_epoch(1, 2)
    progress.train_step(1, 0.7)  # no exception: training goes on


@pytest.mark.parametrize(("seconds", "text"), [(45, "45 s"), (185, "3 min 05 s"), (3720, "1 h 02 min")])
def test_durations(seconds, text):
    assert training.duration_text(seconds) == text


# ------------------------------------------------------------------------- one tiny seeded run

@pytest.mark.per_backend
def test_bench_run_trains_each_seed_shows_progress_and_reports_parity(tmp_path):
    run_dir = tmp_path / "run"
    done = run_cli("run", "--backends", selected_backend(), "--profile", "parity", "--seeds", "2", "--epochs", "1",
                   "--dataset", "synthetic", "--train-samples", "64", "--test-samples", "64", "--maxlen", "20",
                   "--device", "cpu", "--run-dir", str(run_dir), timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "    kerasbench progress: " in done.stdout  # forwarded as it came, for every seed
    log = (run_dir / f"{selected_backend()}.log").read_text()
    assert log.count(training.PROGRESS_PREFIX) >= 2
    [run] = results.load([run_dir])[0]
    assert sorted((r.name.split("[")[1], r.context.seed) for r in run.results) == [
        (f"{selected_backend()}-cpu-seed0]", 0), (f"{selected_backend()}-cpu-seed1]", 1)]  # steps skipped
    assert run.info.settings["seeds"] == [0, 1]
    assert "## Does accuracy hold across backends?" in (run_dir / "REPORT.md").read_text()
    assert any(p.name.startswith("curves_") for p in run_dir.iterdir())
