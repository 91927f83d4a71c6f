"""How a step is timed: batches staged on the device first, every timed call ending in a sync.

The step timed is Keras's own compiled ``train_function`` / ``predict_function``: the function
``model.fit`` and ``model.predict`` run per batch, reached through ``train_on_batch`` and
``predict_on_batch`` so that no private Keras API is needed.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench import backends
from bench.results import StepMetrics


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
                 batch_size: int, staged_batches: int) -> StepMetrics:
    """Time ``step`` with pytest-benchmark; returns the step's metrics for its record.

    The first call (trace/compile) is timed on its own and kept out of the statistics, then the
    warm-up rounds run untimed. The same step is also timed in a plain loop, half before and half
    after the harness's rounds so that a drift over time cancels out: ``harness_vs_plain`` near
    1.0 shows that the harness adds nothing measurable.
    """
    first_step_s = time_call(step)
    for _ in range(warmup_rounds):
        step()
    before = plain_loop(step, rounds // 2)
    benchmark.pedantic(step, rounds=rounds, warmup_rounds=0, iterations=1)
    after = plain_loop(step, rounds - rounds // 2)
    median = benchmark.stats.stats.median
    plain_median = float(np.median(np.concatenate([before, after])))
    return StepMetrics(staged_batches=staged_batches, first_step_s=first_step_s, samples_per_s=batch_size / median,
                       plain_loop_median_s=plain_median, harness_vs_plain=median / plain_median)


def bench_step(benchmark: Any, make_step: Callable[[list], Callable[[], Any]], x: np.ndarray, y: np.ndarray,
               shape: tuple[int, int], *, rounds: int, warmup_rounds: int, staged_batches: int) -> StepMetrics:
    """Stage batches of ``shape`` (batch size, maxlen), time ``make_step(batches)``; returns its metrics."""
    batch_size, maxlen = shape
    # The data is pre-padded: its last ``maxlen`` columns are the reviews padded/truncated to maxlen.
    batches = stage_batches(x[:, -maxlen:], y, batch_size, staged_batches)
    return measure_step(benchmark, make_step(batches), rounds=rounds, warmup_rounds=warmup_rounds,
                        batch_size=batch_size, staged_batches=len(batches))
