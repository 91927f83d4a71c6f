"""How a step is timed: batches staged on the device first, every timed call ending in a sync.

The step timed is Keras's own compiled ``train_function`` / ``predict_function``: the function
``model.fit`` and ``model.predict`` run per batch, reached through ``train_on_batch`` and
``predict_on_batch`` so that no private Keras API is needed.

Rounds are fixed (the profile's count) or adaptive (``timed_rounds``): a pilot plans the rounds that
bring the median's 95% interval within the profile's target, up to its round or time cap. The
interval is over batches of consecutive rounds (``bench.stats.rounds_median_interval``), since
rounds are correlated.
"""

from __future__ import annotations

import gc
import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench import backends, contention, energy, stats
from bench.profiles import AdaptiveRounds
from bench.results import Interval, Rounds, StepMetrics, Tail


def stage_batches(x: np.ndarray, y: np.ndarray, batch_size: int, count: int) -> list[tuple[Any, Any]]:
    """The first ``count`` full batches, copied to the device before any clock starts.

    Only full batches: a partial one has another shape and would retrace on JAX and TensorFlow.
    """
    available = len(x) // batch_size
    if available < 1:
        raise ValueError(f"batch size {batch_size} is larger than the {len(x)} samples available")
    adapter = backends.current()
    return [
        (adapter.to_device(x[i * batch_size : (i + 1) * batch_size]),
         adapter.to_device(y[i * batch_size : (i + 1) * batch_size].astype("float32")))
        for i in range(min(count, available))
    ]


def train_step(model: Any, batches: list[tuple[Any, Any]]) -> Callable[[], dict]:
    """One optimizer step per call, cycling through ``batches``; returns when the device is done."""
    cycle = itertools.cycle(batches)
    sync = backends.current().sync  # looked up once, outside the timed call

    def step() -> dict:
        x, y = next(cycle)
        logs = model.train_on_batch(x, y, return_dict=True)
        sync()
        return logs

    return step


def predict_step(model: Any, batches: list[tuple[Any, Any]]) -> Callable[[], np.ndarray]:
    """One inference batch per call; returns when the device is done."""
    cycle = itertools.cycle(batches)
    sync = backends.current().sync  # looked up once, outside the timed call

    def step() -> np.ndarray:
        x, _ = next(cycle)
        out = model.predict_on_batch(x)
        sync(out)
        return out

    return step


def time_call(fn: Callable[[], Any]) -> float:
    """Seconds for one call of ``fn`` (which must end in a device sync, as the steps above do)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def plain_loop(fn: Callable[[], Any], rounds: int) -> np.ndarray:
    """``rounds`` calls timed back to back with no harness: the reference for harness overhead."""
    return np.array([time_call(fn) for _ in range(rounds)])


def measure_step(benchmark: Any, step: Callable[[], Any], *, rounds: int, warmup_rounds: int,
                 batch_size: int, staged_batches: int, adaptive: AdaptiveRounds | None = None,
                 plain_rounds: int | None = None) -> StepMetrics:
    """Time ``step`` with pytest-benchmark; returns the step's metrics for its record.

    The first call (trace/compile) is timed on its own and kept out of the statistics, then the
    warm-up rounds run untimed. The timed rounds are ``rounds``, or with ``adaptive`` as many as
    ``timed_rounds`` decides. The same step is also timed in a plain loop of ``plain_rounds`` calls
    (default: ``rounds``, or the adaptive minimum), half before and half after the harness's rounds
    so that a drift over time cancels out: ``harness_vs_plain`` near 1.0 shows that the harness adds
    nothing measurable. The record gets the rounds' p50/p90/p99, the median's interval and why the
    rounds stopped, the energy per step where the hardware counts it (``bench.energy``) and what other
    processes took of the CPUs meanwhile (``bench.contention``): those counters are read just before
    and just after the timed rounds, never inside a timed call.
    """
    meter = energy.energy_meter(backends.current().device.kind)  # found before any clock starts
    first_step_s = time_call(step)
    started = time.perf_counter()  # host wall clock around whole phases, each ending in a device sync
    for _ in range(warmup_rounds):
        step()
    plain = plain_rounds if plain_rounds is not None else adaptive.min_rounds if adaptive else rounds
    before = plain_loop(step, plain // 2)
    energy_start = meter.read()
    watch = contention.Watch()
    timed_start = time.perf_counter()
    stop_reason = timed_rounds(benchmark, step, rounds, adaptive)
    timed_s = time.perf_counter() - timed_start
    busy = watch.stop()
    energy_end = meter.read()
    after = plain_loop(step, plain - plain // 2)
    measure_s = time.perf_counter() - started
    median = benchmark.stats.stats.median
    plain_median = float(np.median(np.concatenate([before, after])))
    return StepMetrics(staged_batches=staged_batches, first_step_s=first_step_s, samples_per_s=batch_size / median,
                       plain_loop_median_s=plain_median, harness_vs_plain=median / plain_median,
                       rounds=Rounds("adaptive" if adaptive else "fixed", stop_reason, timed_s, measure_s),
                       **round_statistics(benchmark.stats.stats.data, adaptive),
                       energy=energy.energy_per_step(meter, energy_start, energy_end,
                                                     steps=len(benchmark.stats.stats.data), batch_size=batch_size),
                       contention=busy)


def pilot_rounds(adaptive: AdaptiveRounds) -> int:
    """The rounds an adaptive run times before it plans how many it needs."""
    return max(adaptive.min_rounds, stats.ROUND_PILOT)


def timed_rounds(benchmark: Any, step: Callable[[], Any], rounds: int, adaptive: AdaptiveRounds | None) -> str:
    """Run the timed rounds into pytest-benchmark's statistics; returns why they stopped.

    Fixed rounds: one ``benchmark.pedantic`` call of ``rounds`` rounds ("fixed").

    Adaptive rounds: pytest-benchmark lets a test use its fixture once and runs a number of rounds
    fixed in advance, so the first round is ``benchmark.pedantic(step, rounds=1)``, which creates the
    benchmark's statistics as usual; each further round is timed with the fixture's own timer
    (``benchmark.stats.options["timer"]``, perf_counter unless --benchmark-timer says otherwise,
    with the garbage collector off when --benchmark-disable-gc says so) and handed to
    ``benchmark.stats.update``, the call pedantic makes after each of its rounds. The JSON, the
    terminal table and ``pytest-benchmark compare`` then see every round, as with fixed rounds.

    How many: Stein's two-stage design. After ``pilot_rounds`` (the larger of ``min_rounds`` and
    ``stats.ROUND_PILOT``), between two timed calls, the pilot's batch medians plan the rounds that
    bring the median's interval within ± ``target`` (``stats.rounds_needed``, rounded up to a
    multiple of ``check_every``); the run stops there ("target") or at a cap ("max rounds", "max
    seconds"). Deciding once, from the pilot, instead of stopping at the first look whose interval
    came out narrow, is what keeps the recorded interval (``round_statistics``) honest: stopping at
    the first narrow look covered the true median in 85% of simulated runs, this covers >= 94%, also
    when rounds are correlated (tests/test_adaptive.py).
    """
    if adaptive is None:
        benchmark.pedantic(step, rounds=rounds, warmup_rounds=0, iterations=1)
        return "fixed"
    deadline = time.perf_counter() + adaptive.max_seconds
    benchmark.pedantic(step, rounds=1, warmup_rounds=0, iterations=1)
    metadata = benchmark.stats
    timer = metadata.options["timer"]
    data = metadata.stats.data  # the list pedantic appends to; read here, never through its cached statistics
    collect = not metadata.options.get("disable_gc")
    pilot = min(pilot_rounds(adaptive), adaptive.max_rounds)
    plan = pilot >= stats.ROUND_BATCHES * stats.MIN_ROUNDS_PER_BATCH  # else too few rounds to plan from: run to a cap
    planned = None
    while True:
        done = len(data)
        if plan and planned is None and done >= pilot:
            needed = stats.rounds_needed(data[:pilot], adaptive.target, adaptive.confidence)
            planned = min(-(-needed // adaptive.check_every) * adaptive.check_every, adaptive.max_rounds)
            reached = "target" if needed <= adaptive.max_rounds else "max rounds"
        if planned is not None and done >= planned:
            return reached
        if done >= adaptive.max_rounds:
            return "max rounds"
        if time.perf_counter() >= deadline:
            return "max seconds"
        if not collect:
            gc.disable()
        try:
            start = timer()
            step()
            duration = timer() - start
        finally:
            if not collect:
                gc.enable()
        metadata.update(duration)


def round_statistics(times: Any, adaptive: AdaptiveRounds | None = None) -> dict[str, Tail | Interval]:
    """The rounds' p50/p90/p99 and the median's interval: StepMetrics' ``tail`` and ``interval`` (bench.stats
    does the work)."""
    tail = stats.percentiles(times)
    confidence = adaptive.confidence if adaptive else stats.DEFAULT_CONFIDENCE
    pilot = pilot_rounds(adaptive) if adaptive else None  # the rounds that planned the run's length
    low, high = stats.rounds_median_interval(times, confidence, pilot)
    return {"tail": Tail(tail["p50"], tail["p90"], tail["p99"], stats.PERCENTILE_METHOD),
            "interval": Interval(confidence, stats.ROUNDS_CI_METHOD, low_s=low, high_s=high,
                                 half_width=stats.median_half_width(times, confidence, pilot),
                                 target=adaptive.target if adaptive else None)}


def bench_step(benchmark: Any, make_step: Callable[[list], Callable[[], Any]], x: np.ndarray, y: np.ndarray,
               shape: tuple[int, int], *, rounds: int, warmup_rounds: int, staged_batches: int,
               adaptive: AdaptiveRounds | None = None, plain_rounds: int | None = None) -> StepMetrics:
    """Stage batches of ``shape`` (batch size, maxlen), time ``make_step(batches)``; returns its metrics."""
    batch_size, maxlen = shape
    # The data is pre-padded: its last ``maxlen`` columns are the reviews padded/truncated to maxlen.
    batches = stage_batches(x[:, -maxlen:], y, batch_size, staged_batches)
    return measure_step(benchmark, make_step(batches), rounds=rounds, warmup_rounds=warmup_rounds,
                        batch_size=batch_size, staged_batches=len(batches), adaptive=adaptive,
                        plain_rounds=plain_rounds)
