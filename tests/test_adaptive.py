"""Adaptive rounds, tail percentiles, the serving query count and bootstraps."""

import gc
import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats as sps

from bench import stats, timing
from bench.profiles import PROFILES, AdaptiveRounds
from bench.settings import from_options
from tests.resultfiles import busy


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
    adaptive = AdaptiveRounds(target=0.02, min_rounds=40, max_rounds=200, max_seconds=60, check_every=5)
    reason, bench = run_rounds(jitter, adaptive, monkeypatch)
    assert reason == "target" and len(bench.stats.stats.data) == 40  # the pilot already fits, but the minimum is 40
    assert bench.pedantic_calls == [1]  # the fixture is used once, for the first round
    assert stats.median_half_width(bench.stats.stats.data, pilot=40) <= 0.02


def test_the_pilot_is_at_least_round_pilot_rounds(monkeypatch):
    # Tight from the first round, min_rounds 10: the pilot still times ROUND_PILOT rounds to plan from.
    jitter = 0.1 * (1 + 0.001 * np.sin(np.arange(500)))
    adaptive = AdaptiveRounds(target=0.02, min_rounds=10, max_rounds=200, max_seconds=60, check_every=5)
    reason, bench = run_rounds(jitter, adaptive, monkeypatch)
    assert reason == "target" and len(bench.stats.stats.data) == stats.ROUND_PILOT == 30


def test_the_pilot_plans_the_rounds(monkeypatch):
    # Rounds 6% apart: the pilot's batch medians say how many rounds bring the interval to ±1%.
    rng = np.random.default_rng(5)
    durations = 0.1 * np.exp(0.06 * rng.standard_normal(1000))
    adaptive = AdaptiveRounds(target=0.01, min_rounds=10, max_rounds=400, max_seconds=1e6, check_every=7)
    reason, bench = run_rounds(durations, adaptive, monkeypatch)
    se = np.std([np.median(b) for b in np.array_split(durations[:30], 5)], ddof=1) / np.sqrt(5)
    needed = 30 * (sps.t.ppf(0.975, 4) * se / (0.01 * np.median(durations[:30]))) ** 2  # Stein, written out
    assert 60 < needed < 390
    assert reason == "target" and len(bench.stats.stats.data) == 7 * math.ceil(math.ceil(needed) / 7)
    # A target the caps cannot reach: the rounds stop at the cap, and say so.
    tight = AdaptiveRounds(target=0.0005, min_rounds=10, max_rounds=60, max_seconds=1e6, check_every=7)
    reason, bench = run_rounds(durations, tight, monkeypatch)
    assert reason == "max rounds" and len(bench.stats.stats.data) == 60


def test_the_recorded_interval_is_never_narrower_than_the_pilot_planned():
    # A noisy pilot, then tight rounds: the batches alone would claim ±0.1%; Stein's half-width from
    # the pilot, scaled to all the rounds, is what the design guarantees.
    rng = np.random.default_rng(6)
    times = np.concatenate([0.1 * np.exp(0.1 * rng.standard_normal(30)), np.full(270, 0.1)])
    se = np.std([np.median(b) for b in np.array_split(times[:30], 5)], ddof=1) / np.sqrt(5)
    stein = sps.t.ppf(0.975, 4) * se * np.sqrt(30 / 300)
    low, high = stats.rounds_median_interval(times, pilot=30)
    assert (high - low) / 2 == pytest.approx(stein)
    low, high = stats.rounds_median_interval(times)
    assert (high - low) / 2 < stein / 10


def test_noisy_rounds_stop_at_the_round_cap(monkeypatch):
    noisy = 0.1 * np.random.default_rng(0).lognormal(0, 0.5, 1000)  # the median's interval never narrows to ±2%
    adaptive = AdaptiveRounds(target=0.02, min_rounds=10, max_rounds=40, max_seconds=1e6, check_every=5)
    reason, bench = run_rounds(noisy, adaptive, monkeypatch)
    assert reason == "max rounds" and len(bench.stats.stats.data) == 40


def test_slow_rounds_stop_at_the_time_cap(monkeypatch):
    slow = np.tile([1.0, 3.0], 500)
    adaptive = AdaptiveRounds(target=0.02, min_rounds=10, max_rounds=400, max_seconds=20, check_every=5)
    reason, bench = run_rounds(slow, adaptive, monkeypatch)
    assert reason == "max seconds" and 9 <= len(bench.stats.stats.data) <= 11  # 20 s of 2 s rounds


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
    assert interval.method == stats.ROUNDS_CI_METHOD and "numpy.percentile" in tail.method
    # 19 rounds give no 95% interval of the median (5 batches of at least 4 rounds), 20 do
    assert timing.round_statistics(times[:19])["interval"].low_s is None
    assert timing.round_statistics(times[:20])["interval"].low_s is not None


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
        assert rounds % 5 == 0 and rounds >= 30  # the pilot, then a multiple of check_every
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


def test_process_spread_and_variation():
    assert stats.process_spread([0.1, 0.11, 0.105]) == pytest.approx(0.1)
    assert stats.process_variation([0.1]) is None
    assert stats.process_variation([0.1, 0.1]) == 0


# ------------------------------------------------------------------- the stopping rule under correlated rounds

def ar1_rounds(rng, rho, count, sigma=0.05, median=0.1):
    """Lognormal round times whose logs follow a stationary AR(1) with lag-1 autocorrelation ``rho``."""
    logs = np.empty(count)
    logs[0] = rng.standard_normal()
    for i in range(1, count):
        logs[i] = rho * logs[i - 1] + np.sqrt(1 - rho**2) * rng.standard_normal()
    return median * np.exp(sigma * logs)


def stop_and_cover(rho, runs, monkeypatch, interval=None):
    """Share of adaptive runs (quick profile's settings) whose reported interval holds the true median."""
    rng = np.random.default_rng(11)
    adaptive = AdaptiveRounds(target=0.015, min_rounds=10, max_rounds=120, max_seconds=1e9, check_every=5)
    covered = stopped = 0
    for _ in range(runs):
        reason, bench = run_rounds(ar1_rounds(rng, rho, 200), adaptive, monkeypatch)
        data = bench.stats.stats.data
        low, high = interval(data) if interval else stats.rounds_median_interval(data, pilot=30)
        covered += low is not None and low <= 0.1 <= high
        stopped += reason == "target"
    return covered / runs, stopped / runs


@pytest.mark.parametrize("rho", [0.0, 0.5])
def test_the_interval_at_the_adaptive_stop_covers_under_correlated_rounds(rho, monkeypatch):
    # Rounds correlated as the reference results' are (lag-1 up to 0.55), the quick profile's rule:
    # the interval recorded at the stop covers the true median >= 93% of the time.
    coverage, stopped = stop_and_cover(rho, 300, monkeypatch)
    assert coverage >= 0.93 and stopped > 0.2  # and some runs do reach the target within the caps


def test_the_order_statistic_interval_would_not_cover_there(monkeypatch):
    # The interval it replaced, under the same rule and rounds: it assumes independent rounds.
    coverage, _ = stop_and_cover(0.5, 300, monkeypatch, interval=lambda data: stats.quantile_interval(data, 0.5))
    assert coverage < 0.9


def test_harness_vs_plain_is_the_harness_over_the_plain_loop(monkeypatch):
    # The plain loop's calls take 0.1 s, the harness's rounds 0.2 s: the harness looks twice as slow.
    clock = Clock([1.0, 0.1, 0.1] + [0.2] * 4 + [0.1, 0.1])  # first call, plain before, rounds, plain after
    monkeypatch.setattr(timing.time, "perf_counter", clock)

    class Benchmark(FakeBenchmark):
        def pedantic(self, target, rounds=1, warmup_rounds=0, iterations=1):
            super().pedantic(target, rounds, warmup_rounds, iterations)
            self.stats.stats.median = float(np.median(self.stats.stats.data))

    metrics = timing.measure_step(Benchmark(clock), clock.step, rounds=4, warmup_rounds=0, batch_size=8,
                                  staged_batches=1, plain_rounds=4)
    assert metrics.first_step_s == pytest.approx(1.0) and metrics.plain_loop_median_s == pytest.approx(0.1)
    assert metrics.harness_vs_plain == pytest.approx(2.0) and metrics.samples_per_s == pytest.approx(40)



def test_the_contention_watch_spans_exactly_the_timed_rounds(monkeypatch):
    # The watch starts after the warm-up and the plain loop's first half and stops before its second half:
    # what it records is what other processes took while the timed rounds ran, and it lands in the record.
    clock = Clock([1.0, 0.1, 0.1] + [0.2] * 4 + [0.1, 0.1])
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    calls, seen = [], []

    def step():
        calls.append(1)
        clock.step()

    class Watch:
        def __init__(self):
            seen.append(("start", len(calls)))

        def stop(self):
            seen.append(("stop", len(calls)))
            return busy(0.3)

    class Benchmark(FakeBenchmark):
        def pedantic(self, target, rounds=1, warmup_rounds=0, iterations=1):
            super().pedantic(target, rounds, warmup_rounds, iterations)
            self.stats.stats.median = float(np.median(self.stats.stats.data))

    monkeypatch.setattr(timing.contention, "Watch", Watch)
    metrics = timing.measure_step(Benchmark(clock), step, rounds=4, warmup_rounds=0, batch_size=8,
                                  staged_batches=1, plain_rounds=4)
    assert metrics.contention == busy(0.3)
    assert seen == [("start", 3), ("stop", 7)]  # after the first call and 2 plain calls; after the 4 rounds


# -------------------------------------------------- the timing helpers around a stand-in backend (no Keras)

class FakeAdapter:
    """backends.current() as timing uses it: to_device, sync and the device's kind, each call recorded."""

    def __init__(self):
        self.device = SimpleNamespace(kind="cpu")
        self.staged, self.synced = [], []

    def to_device(self, array):
        self.staged.append(array)
        return ("on device", array)

    def sync(self, *out):
        self.synced.append(out)


class FakeMeter:
    """An energy counter that reads 10 J per second of the fake clock."""

    source = "fake counter"

    def __init__(self, clock):
        self.clock = clock

    def read(self):
        return 10 * self.clock.now

    def joules(self, start, end):
        return end - start


class StrictBenchmark(FakeBenchmark):
    """pedantic with every argument named, as timing must pass them; records each call's arguments."""

    def pedantic(self, target, *, rounds, warmup_rounds, iterations):
        self.pedantic_calls.append((rounds, warmup_rounds, iterations))
        data = []
        self.stats = SimpleNamespace(options={"timer": self.clock, "disable_gc": self.disable_gc},
                                     stats=SimpleNamespace(data=data, median=None), update=data.append)
        for _ in range(rounds):
            start = self.clock()
            target()
            data.append(self.clock() - start)
        self.stats.stats.median = float(np.median(data))

    disable_gc = False


@pytest.fixture
def fake_adapter(monkeypatch):
    fake = FakeAdapter()
    monkeypatch.setattr(timing.backends, "current", lambda: fake)
    return fake


def test_stage_batches_copies_whole_batches_in_order(fake_adapter):
    x, y = np.arange(30).reshape(10, 3), np.arange(10)
    batches = timing.stage_batches(x, y, 4, count=5)
    assert len(batches) == 2 and len(fake_adapter.staged) == 4  # 10 // 4 full batches, x and y each
    (bx0, by0), (bx1, by1) = batches
    np.testing.assert_array_equal(bx0[1], x[0:4])
    np.testing.assert_array_equal(bx1[1], x[4:8])
    np.testing.assert_array_equal(by1[1], [4.0, 5.0, 6.0, 7.0])
    assert by0[1].dtype == np.float32 and bx0[0] == "on device"
    assert len(timing.stage_batches(x, y, 4, count=1)) == 1
    [(whole, _)] = timing.stage_batches(x, y, 10, count=3)  # exactly one batch
    np.testing.assert_array_equal(whole[1], x)
    with pytest.raises(ValueError, match=r"^batch size 11 is larger than the 10 samples available$"):
        timing.stage_batches(x, y, 11, count=1)


def test_steps_cycle_through_the_batches_and_sync(fake_adapter):
    calls = []
    model = SimpleNamespace(
        train_on_batch=lambda x, y, return_dict: calls.append((x, y, return_dict)) or {"loss": len(calls)},
        predict_on_batch=lambda x: calls.append(x) or f"out {x}")
    step = timing.train_step(model, [("x0", "y0"), ("x1", "y1")])
    assert [step(), step(), step()] == [{"loss": 1}, {"loss": 2}, {"loss": 3}]
    assert calls == [("x0", "y0", True), ("x1", "y1", True), ("x0", "y0", True)] and fake_adapter.synced == [()] * 3
    calls.clear()
    predict = timing.predict_step(model, [("x0", "y0"), ("x1", "y1")])
    assert [predict(), predict(), predict()] == ["out x0", "out x1", "out x0"]
    assert calls == ["x0", "x1", "x0"] and fake_adapter.synced[3:] == [("out x0",), ("out x1",), ("out x0",)]


def measured(monkeypatch, durations, **options):
    clock = Clock(durations)
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    kinds = []
    monkeypatch.setattr(timing.energy, "energy_meter", lambda kind: kinds.append(kind) or FakeMeter(clock))
    metrics = timing.measure_step(StrictBenchmark(clock), clock.step, batch_size=8, staged_batches=3, **options)
    assert kinds == ["cpu"]
    return metrics


def test_measure_step_times_each_phase_and_the_energy_of_the_timed_rounds(monkeypatch, fake_adapter):
    # First call 1 s, 2 warm-up rounds of 0.5 s, plain loop 3 x 0.1 s, 4 rounds of 0.2 s, plain loop 3 x 0.1 s.
    durations = [1.0, 0.5, 0.5, 0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1]
    metrics = measured(monkeypatch, durations, rounds=4, warmup_rounds=2, plain_rounds=6)
    assert metrics.staged_batches == 3 and metrics.first_step_s == pytest.approx(1.0)
    assert metrics.samples_per_s == pytest.approx(40) and metrics.plain_loop_median_s == pytest.approx(0.1)
    assert metrics.harness_vs_plain == pytest.approx(2.0)
    assert metrics.rounds.mode == "fixed" and metrics.rounds.stop_reason == "fixed"
    assert metrics.rounds.timed_s == pytest.approx(0.8) and metrics.rounds.measure_s == pytest.approx(2.4)
    assert metrics.energy.source == "fake counter"
    assert metrics.energy.j_per_step == pytest.approx(2.0) and metrics.energy.samples_per_joule == pytest.approx(4.0)
    assert metrics.tail.p50_s == pytest.approx(0.2) and metrics.interval.target is None
    assert metrics.interval.confidence == 0.95


def test_measure_step_with_adaptive_rounds_loops_plainly_for_its_minimum(monkeypatch, fake_adapter):
    adaptive = AdaptiveRounds(target=0.5, min_rounds=4, max_rounds=6, max_seconds=1e6, check_every=1, confidence=0.9)
    # First call, no warm-up, plain loop 2 x 0.1 s, 6 rounds of 0.2 s (too few to plan from: the round cap), 2 x 0.1.
    durations = [1.0, 0.1, 0.1] + [0.2] * 6 + [0.1, 0.1]
    metrics = measured(monkeypatch, durations, rounds=30, warmup_rounds=0, adaptive=adaptive)
    assert metrics.rounds.mode == "adaptive" and metrics.rounds.stop_reason == "max rounds"
    assert metrics.rounds.timed_s == pytest.approx(1.2) and metrics.plain_loop_median_s == pytest.approx(0.1)
    assert metrics.interval.target == 0.5 and metrics.interval.confidence == 0.9
    assert metrics.energy.j_per_step == pytest.approx(2.0)


def strict_rounds(durations, adaptive, monkeypatch, disable_gc=False):
    clock = Clock(durations)
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    bench = StrictBenchmark(clock)
    bench.disable_gc = disable_gc
    return timing.timed_rounds(bench, clock.step, rounds=7, adaptive=adaptive), bench


def test_fixed_and_first_rounds_are_pedantic_without_warm_up_or_iterations(monkeypatch):
    reason, bench = strict_rounds(np.full(20, 0.1), None, monkeypatch)
    assert reason == "fixed" and bench.pedantic_calls == [(7, 0, 1)]
    adaptive = AdaptiveRounds(target=0.02, min_rounds=5, max_rounds=12, max_seconds=1e6, check_every=5)
    reason, bench = strict_rounds(np.full(20, 0.1), adaptive, monkeypatch)
    assert bench.pedantic_calls == [(1, 0, 1)]
    # Fewer than 20 rounds at most: nothing to plan from, the rounds run to the cap, exactly.
    assert reason == "max rounds" and len(bench.stats.stats.data) == 12


def test_a_pilot_of_exactly_20_rounds_plans_and_a_plan_of_exactly_the_cap_reaches_the_target(monkeypatch):
    adaptive = AdaptiveRounds(target=0.02, min_rounds=5, max_rounds=20, max_seconds=1e6, check_every=5)
    reason, bench = strict_rounds(np.full(40, 0.1), adaptive, monkeypatch)
    assert reason == "target" and len(bench.stats.stats.data) == 20
    # 19 rounds at most cannot be planned from (a pilot needs 20): the cap.
    short = AdaptiveRounds(target=0.02, min_rounds=5, max_rounds=19, max_seconds=1e6, check_every=5)
    assert strict_rounds(np.full(40, 0.1), short, monkeypatch)[0] == "max rounds"


def test_the_plan_uses_the_adaptive_confidence(monkeypatch):
    rng = np.random.default_rng(5)
    durations = 0.1 * np.exp(0.06 * rng.standard_normal(1000))
    adaptive = AdaptiveRounds(target=0.005, min_rounds=10, max_rounds=400, max_seconds=1e6, check_every=1,
                              confidence=0.8)
    reason, bench = strict_rounds(durations, adaptive, monkeypatch)
    se = np.std([np.median(b) for b in np.array_split(durations[:30], 5)], ddof=1) / np.sqrt(5)
    needed = 30 * (sps.t.ppf(0.9, 4) * se / (0.005 * np.median(durations[:30]))) ** 2  # Stein at 80%
    assert needed > 30  # more than the pilot: the confidence shows in the count
    assert reason == "target" and len(bench.stats.stats.data) == max(30, math.ceil(needed))
    assert math.ceil(needed) != math.ceil(needed * (sps.t.ppf(0.975, 4) / sps.t.ppf(0.9, 4)) ** 2)


def test_the_time_cap_stops_when_the_deadline_is_reached_exactly(monkeypatch):
    adaptive = AdaptiveRounds(target=0.02, min_rounds=5, max_rounds=12, max_seconds=5, check_every=5)
    reason, bench = strict_rounds(np.full(20, 1.0), adaptive, monkeypatch)
    assert reason == "max seconds" and len(bench.stats.stats.data) == 5


def test_the_garbage_collector_is_off_in_timed_rounds_only_when_asked(monkeypatch):
    adaptive = AdaptiveRounds(target=0.02, min_rounds=5, max_rounds=6, max_seconds=1e6, check_every=5)
    for disable_gc in (True, False):
        clock = Clock(np.full(20, 0.1))
        seen = []
        monkeypatch.setattr(timing.time, "perf_counter", clock)
        bench = StrictBenchmark(clock)
        bench.disable_gc = disable_gc

        def step(seen=seen, clock=clock):
            seen.append(gc.isenabled())
            clock.step()

        timing.timed_rounds(bench, step, 7, adaptive)
        assert seen[1:] == [not disable_gc] * 5 and gc.isenabled()  # the rounds after pedantic's first


def test_round_statistics_of_adaptive_rounds_keep_the_pilots_half_width_at_their_confidence():
    rng = np.random.default_rng(6)
    times = list(np.concatenate([0.1 * np.exp(0.1 * rng.standard_normal(30)), np.full(270, 0.1)]))
    adaptive = AdaptiveRounds(target=0.02, min_rounds=10, confidence=0.9)
    found = timing.round_statistics(times, adaptive)["interval"]
    se = np.std([np.median(b) for b in np.array_split(times[:30], 5)], ddof=1) / np.sqrt(5)
    stein = sps.t.ppf(0.95, 4) * se * np.sqrt(30 / 300)  # the pilot of 30 rounds at 90%, scaled to 300
    assert found.confidence == 0.9 and (found.high_s - found.low_s) / 2 == pytest.approx(stein)
    assert found.half_width == pytest.approx(stein / 0.1)


def test_bench_step_stages_the_last_maxlen_columns_and_times_the_step(monkeypatch, fake_adapter):
    x, y = np.arange(70).reshape(10, 7), np.arange(10)
    made, calls = [], []

    def make_step(batches):
        made.append(batches)
        return lambda: calls.append(1) or clock.step()

    clock = Clock([1.0] + [0.1] * 30)
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    monkeypatch.setattr(timing.energy, "energy_meter", lambda kind: FakeMeter(clock))
    metrics = timing.bench_step(StrictBenchmark(clock), make_step, x, y, (4, 3), rounds=4, warmup_rounds=1,
                                staged_batches=5, plain_rounds=2)
    [batches] = made
    assert len(batches) == 2 and metrics.staged_batches == 2  # 10 // 4 full batches, fewer than the 5 asked
    np.testing.assert_array_equal(batches[0][0][1], x[0:4, 4:])  # the last 3 of 7 columns
    assert len(calls) == 1 + 1 + 2 + 4  # first call, warm-up, the plain loop's 2 (as asked), 4 rounds
    np.testing.assert_array_equal(batches[1][1][1], [4.0, 5.0, 6.0, 7.0])
    assert metrics.samples_per_s == pytest.approx(40) and metrics.rounds.stop_reason == "fixed"
    adaptive = AdaptiveRounds(target=0.5, min_rounds=3, max_rounds=5, max_seconds=1e6, check_every=1)
    clock.durations = iter([1.0] + [0.1] * 30)
    metrics = timing.bench_step(StrictBenchmark(clock), make_step, x, y, (4, 3), rounds=4, warmup_rounds=0,
                                staged_batches=5, adaptive=adaptive)
    assert metrics.rounds.mode == "adaptive" and metrics.rounds.stop_reason == "max rounds"


def test_fixed_rounds_loop_plainly_as_many_times_as_they_time(monkeypatch, fake_adapter):
    durations = [1.0, 0.1, 0.1, 0.2, 0.2, 0.2, 0.2, 0.1, 0.1]  # first call, plain 2, 4 rounds, plain 2
    metrics = measured(monkeypatch, durations, rounds=4, warmup_rounds=0)
    assert metrics.plain_loop_median_s == pytest.approx(0.1) and metrics.rounds.timed_s == pytest.approx(0.8)
