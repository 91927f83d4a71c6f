"""Where a train step's time goes (``--explain yes``): forward, backward, optimizer and framework overhead.

After a train-step benchmark's timed rounds (never inside them), the same step is timed beside three
variants that stop after one more phase each (the backend adapter's ``phase_steps``, or a native
reference's): the loss ("forward"), the loss and its gradients ("forward_backward"), and those plus the
optimizer's update ("update"). Calls are interleaved round by round, so drift hits all four alike, and
each ends in a device sync. Differences of medians give the phases:

    forward   = forward
    backward  = forward_backward - forward
    optimizer = update - forward_backward
    overhead  = step - update    (what the full step adds: framework code, metrics, dispatch; may be < 0
                                  where the step does less than the lean variant, e.g. donating buffers)

They add up to the step timed beside them by construction; the check that matters is that step against
the benchmark's own median (``adds_up``: within ``TOLERANCE``). The backend's profiler then splits the
step's time by operation family (``Adapter.op_families``), where the adapter reads one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench import backends, timing
from bench.results import Phases

TOLERANCE = 0.10  # the phases' step against the benchmark's median
PROFILED_CALLS = 5
VARIANTS = ("step", "forward", "forward_backward", "update")


def explain(make_step: Callable[[list], Callable[[], Any]],
            make_phases: Callable[[Any, Any], dict[str, Callable[[], Any]]], x: np.ndarray, y: np.ndarray,
            shape: tuple[int, int], *, rounds: int, measured_median_s: float) -> Phases:
    """Time the step (``make_step`` of one staged batch) beside its phase variants (``make_phases(x, y)``)."""
    started = time.perf_counter()
    adapter = backends.current()
    batch_size, maxlen = shape
    batches = timing.stage_batches(x[:, -maxlen:], y, batch_size, 1)
    calls = {"step": make_step(batches), **make_phases(*batches[0])}
    sync = adapter.sync
    for call in calls.values():  # first calls trace and compile
        sync(call())
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(rounds):
        for name in VARIANTS:
            call = calls[name]
            start = time.perf_counter()
            sync(call())
            times[name].append(time.perf_counter() - start)
    m = {name: statistics.median(values) for name, values in times.items()}
    families, profiler = adapter.op_families(calls["step"], PROFILED_CALLS)
    return Phases(forward_s=m["forward"], backward_s=m["forward_backward"] - m["forward"],
                  optimizer_s=m["update"] - m["forward_backward"], overhead_s=m["step"] - m["update"],
                  step_s=m["step"], measured_median_s=measured_median_s, tolerance=TOLERANCE,
                  adds_up=abs(m["step"] / measured_median_s - 1) <= TOLERANCE, rounds=rounds,
                  op_families_s=families, profiler=profiler, measure_s=time.perf_counter() - started)
