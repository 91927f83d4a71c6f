"""Adaptive rounds, tail percentiles, the serving query count and bootstraps."""

from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats as sps

from bench import stats, timing
from bench.profiles import PROFILES, AdaptiveRounds
from bench.settings import from_options


class Clock:
    """perf_counter stand-in: a step advances it by the next of ``durations``."""

    def __init__(self, durations):
        self.now = 1000.0
        self.durations = iter(durations)

    def __call__(self):
        return self.now

    def step(self):
        self.now += next(self.durations)


class FakeBenchmark:
    """pytest-benchmark's fixture as timing uses it (pedantic once; stats.options, stats.update, stats.stats.data)."""

    def __init__(self, clock):
        self.clock = clock
        self.stats = None
        self.pedantic_calls = []

    def pedantic(self, target, rounds=1, warmup_rounds=0, iterations=1):
        self.pedantic_calls.append(rounds)
        data = []
        self.stats = SimpleNamespace(options={"timer": self.clock, "disable_gc": False},
                                     stats=SimpleNamespace(data=data, median=None), update=data.append)
        for _ in range(rounds):
            start = self.clock()
            target()
            self.stats.update(self.clock() - start)


def run_rounds(durations, adaptive, monkeypatch):
    clock = Clock(durations)
    monkeypatch.setattr(timing.time, "perf_counter", clock)  # the max-seconds deadline reads the same clock
    bench = FakeBenchmark(clock)
    reason = timing.timed_rounds(bench, clock.step, rounds=30, adaptive=adaptive)
    return reason, bench


def test_tight_rounds_stop_at_the_target_after_the_minimum(monkeypatch):
    jitter = 0.1 * (1 + 0.001 * np.sin(np.arange(500)))
    adaptive = AdaptiveRounds(target=0.02, min_rounds=10, max_rounds=200, max_seconds=60, check_every=5)
    reason, bench = run_rounds(jitter, adaptive, monkeypatch)
    assert reason == "target" and len(bench.stats.stats.data) == 10
    assert bench.pedantic_calls == [1]  # the fixture is used once, for the first round
    assert stats.median_half_width(bench.stats.stats.data) <= 0.02


def test_noisy_rounds_stop_at_the_round_cap(monkeypatch):
    noisy = np.tile([0.1, 0.3], 500)  # the median's interval never narrows to ±2%
    adaptive = AdaptiveRounds(target=0.02, min_rounds=10, max_rounds=40, max_seconds=1e6, check_every=5)
    reason, bench = run_rounds(noisy, adaptive, monkeypatch)
    assert reason == "max rounds" and len(bench.stats.stats.data) == 40


def test_slow_rounds_stop_at_the_time_cap(monkeypatch):
    slow = np.tile([1.0, 3.0], 500)
    adaptive = AdaptiveRounds(target=0.02, min_rounds=10, max_rounds=400, max_seconds=20, check_every=5)
    reason, bench = run_rounds(slow, adaptive, monkeypatch)
    assert reason == "max seconds" and 9 <= len(bench.stats.stats.data) <= 11  # 20 s of 2 s rounds


def test_the_interval_is_looked_at_every_check_every_rounds(monkeypatch):
    # Noisy for 23 rounds, then tight: the first look that fits is at a multiple of check_every.
    durations = np.concatenate([np.tile([0.1, 0.2], 12)[:23], np.full(500, 0.15)])
    adaptive = AdaptiveRounds(target=0.01, min_rounds=10, max_rounds=400, max_seconds=1e6, check_every=7)
    reason, bench = run_rounds(durations, adaptive, monkeypatch)
    assert reason == "target" and len(bench.stats.stats.data) % 7 == 0


def test_fixed_rounds_are_one_pedantic_call(monkeypatch):
    reason, bench = run_rounds(np.full(100, 0.1), None, monkeypatch)
    assert reason == "fixed" and bench.pedantic_calls == [30] and len(bench.stats.stats.data) == 30


def test_round_statistics_name_their_methods():
    times = list(np.random.default_rng(0).lognormal(np.log(0.1), 0.05, 200))
    found = timing.round_statistics(times, AdaptiveRounds(target=0.02))
    tail, interval = found["tail"], found["interval"]
    np.testing.assert_allclose([tail.p50_s, tail.p90_s, tail.p99_s], np.percentile(times, [50, 90, 99]))
    assert tail.p50_s <= tail.p90_s <= tail.p99_s
    assert interval.low_s < tail.p50_s < interval.high_s
    assert interval.target == 0.02 and timing.round_statistics(times)["interval"].target is None
    assert "quantile_test" in interval.method and "numpy.percentile" in tail.method
    # 5 rounds give no 95% interval of the median
    assert timing.round_statistics(times[:5])["interval"].low_s is None


def test_adaptive_rounds_through_the_real_pytest_benchmark_fixture(benchmark):
    # The same code path as the benchmarks, on pytest-benchmark 5's real fixture: every round it timed
    # lands in its statistics (which its JSON and `pytest-benchmark compare` read).
    adaptive = AdaptiveRounds(target=0.5, min_rounds=10, max_rounds=40, max_seconds=5, check_every=5)
    metrics = timing.measure_step(benchmark, lambda: sum(range(2000)), rounds=30, warmup_rounds=2, batch_size=1,
                                  staged_batches=1, adaptive=adaptive)
    rounds = benchmark.stats.stats.rounds
    assert 10 <= rounds <= 40 and len(benchmark.stats.stats.data) == rounds
    assert metrics.rounds.stop_reason in {"target", "max rounds", "max seconds"}
    if metrics.rounds.stop_reason == "target":
        assert metrics.interval.half_width <= 0.5 and rounds % 5 == 0
    assert metrics.rounds.mode == "adaptive" and metrics.rounds.timed_s <= metrics.rounds.measure_s


def test_profiles_and_the_rounds_option():
    assert PROFILES["quick"].adaptive is not None and PROFILES["smoke"].adaptive is None
    options = {"profile": "quick", "variant": "default", "dataset": "synthetic", "imdb_path": None, "device": "cpu",
               "batch_size": None, "maxlen": None, "epochs": None, "train_samples": None, "test_samples": None,
               "threads": None, "seed": None, "seeds": None, "results_dir": None, "rounds": "profile"}
    assert from_options(options.get).adaptive == PROFILES["quick"].adaptive
    assert from_options({**options, "rounds": "fixed"}.get).adaptive is None
    assert from_options({**options, "profile": "smoke", "rounds": "adaptive"}.get).adaptive == AdaptiveRounds()


# ------------------------------------------------------------------------------------------ statistics

@pytest.mark.parametrize(("percentile", "margin"), [(0.99, 0.005), (0.9, 0.05), (0.5, 0.02)])
def test_query_count_is_the_fewest_whose_interval_fits(percentile, margin):
    n = stats.queries_for_percentile(percentile, margin).queries

    def fits(count):
        # quantile_test's own interval on the ranks 1..count, as levels.
        ci = sps.quantile_test(np.arange(1, count + 1, dtype=float), q=1, p=percentile).confidence_interval(0.95)
        return (np.isfinite(ci.low) and np.isfinite(ci.high)
                and percentile - ci.low / count <= margin + 1e-12 and ci.high / count - percentile <= margin + 1e-12)

    assert fits(n) and not fits(n - 1)


def test_query_counts_for_serving():
    assert stats.queries_for_percentile(0.99, 0.005).queries == 1600  # quick: p99 within p98.5..p99.5
    assert stats.queries_for_percentile(0.99, 0.0025).queries > 4 * 1500  # half the margin: ~4x the queries
    with pytest.raises(ValueError):
        stats.queries_for_percentile(0.99, 0.0)


def test_process_interval():
    assert stats.process_interval([0.1]).low is None
    same = stats.process_interval([0.1, 0.1, 0.1])
    assert same.low == same.high == 0.1
    interval = stats.process_interval([0.10, 0.11, 0.12, 0.13])
    assert 0.10 <= interval.low <= interval.estimate <= interval.high <= 0.13
    assert interval == stats.process_interval([0.10, 0.11, 0.12, 0.13])  # seeded


def test_hierarchical_bootstrap_counts_the_spread_between_processes():
    rng = np.random.default_rng(3)
    tight = [list(0.1 * (1 + 0.01 * rng.standard_normal(40))) for _ in range(3)]
    shifted = [[t * 1.05 for t in p] for p in tight]
    test = stats.hierarchical_bootstrap(tight, shifted)
    assert test.low > 1 and test.p_value < 0.01 and test.ratio == pytest.approx(1.05)
    assert test == stats.hierarchical_bootstrap(tight, shifted)  # seeded: the same files, the same verdict
    # The same 5% shift, but the current processes disagree by ±10%: no longer significant.
    drifting = [[t * f for t in p] for p, f in zip(tight, (0.95, 1.05, 1.15), strict=True)]
    assert stats.hierarchical_bootstrap(tight, drifting).low < 1
    assert stats.hierarchical_bootstrap(tight, tight).p_value == 1.0


def test_process_spread_and_variation():
    assert stats.process_spread([0.1, 0.11, 0.105]) == pytest.approx(0.1)
    assert stats.process_variation([0.1]) is None
    assert stats.process_variation([0.1, 0.1]) == 0
