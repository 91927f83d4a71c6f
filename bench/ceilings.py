"""What this machine can do, measured by the backend itself: the ceilings the bounds are drawn against.

Four small programs, run with the backend's own ops (``Adapter.own_op``) on its device, dtype float32 and the
run's threads, after the timed rounds (never inside them):

- a large GEMM (a practical compute peak, FLOP/s), through each GEMM path the backend has (``Adapter.gemms``:
  torch has MKL's and oneDNN's), the fastest kept and named;
- the LSTM's recurrent GEMM, (batch, units) @ (units, 4 units): the product no kernel can hoist out of
  the timestep loop, as a chain of dependent products compiled the way the backend runs a step (its
  latency at this shape);
- STREAM's Add kernel, c = a + b, as one eager op (three arrays move), bytes/s. Arrays of 16 MiB (48 MiB
  in all, past this machine's 16 MiB L3): here 32 MiB arrays measured 0.32 to 0.61 of that bandwidth,
  likely because glibc maps allocations of 32 MiB afresh each time (its largest mmap threshold), so each
  repeat faults its pages in;
- the round trip of one tiny op, the backend's own add called eagerly (the dispatch floor, seconds per op).

Each is the median of several timed repeats, each ending in a device sync. They are cached per machine,
backend, device and threads (``bench.fingerprint.machine_key``), so a run pays for them once; but not when
other processes used the CPUs while they were measured (``bench.contention``): a ceiling measured under
load once stood cached at a tenth of the machine's GEMM rate (16 against 173 GFLOP/s), and every later share
of it came out above 1.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import backends, cache, contention

CACHE_VERSION = 6  # bumped when what is measured changes (5: contended ceilings were cached; 6: the fastest GEMM path)
GEMM_N = {"cpu": 1024, "gpu": 8192}
TRIAD_N = {"cpu": 2**22, "gpu": 2**27}
CELL_CALLS = 200  # back-to-back recurrent GEMMs per timed repeat
DISPATCH_CALLS = 1000
REPEATS = 7


@dataclass(frozen=True)
class Ceilings:
    """Measured ceilings of one backend on one device (see the module docstring)."""

    gemm_flops_per_s: float  # the fastest path's
    gemm_n: int
    cell_gemm_s: float  # per dependent recurrent GEMM at (batch, units) @ (units, 4 units), in a compiled chain
    cell_shape: tuple
    triad_bytes_per_s: float
    triad_n: int
    dispatch_s: float  # per tiny op
    measure_s: float  # what measuring them cost, wall clock
    how: str = "the backend's own ops on its device, float32, median of repeats, each ending in a device sync"
    spec_flops_per_s: float | None = None  # a GPU's spec-sheet peak, where known: a spec value, not measured
    # What other processes took of the CPUs (or GPU) while these were measured; contended ones are not cached.
    other_cpu_share: float | None = None
    contended: bool = False
    gemm_path: str = "matmul"  # which of the backend's GEMM paths was fastest
    gemm_paths_flops_per_s: dict | None = None  # each path's rate, FLOP/s

    def as_dict(self) -> dict:
        return asdict(self)


def measure(batch_size: int, units: int, *, repeats: int = REPEATS) -> Ceilings:
    """Measure the ceilings now on the configured backend."""
    import keras

    adapter = backends.current()
    kind = adapter.device.kind
    started = time.perf_counter()
    watch = contention.Watch()
    rng = np.random.default_rng(0)
    n = GEMM_N[kind]
    a, b = (adapter.to_device(rng.standard_normal((n, n), dtype=np.float32)) for _ in range(2))
    add, matmul = adapter.own_op("add"), adapter.own_op("matmul")
    rates = {name: 2 * n**3 / _median_time(run, repeats, adapter) for name, run in adapter.gemms(a, b).items()}
    fastest = max(rates, key=rates.__getitem__)

    one = adapter.to_device(np.ones((1,), np.float32))

    def tiny_ops() -> Any:
        out = one
        for _ in range(DISPATCH_CALLS):
            out = add(out, one)
        return out

    dispatch_s = _median_time(tiny_ops, repeats, adapter) / DISPATCH_CALLS

    # The recurrence: CELL_CALLS dependent products h <- (h @ U)[:, :units], compiled as the backend runs a
    # step (jit, tf.function; op by op on torch, where the two ops' dispatch floor is taken off).
    h0 = adapter.to_device(rng.standard_normal((batch_size, units), dtype=np.float32) * 0.01)
    u = adapter.to_device(rng.standard_normal((units, 4 * units), dtype=np.float32) * 0.01)

    def chain(h: Any, u: Any) -> Any:
        return keras.ops.fori_loop(0, CELL_CALLS, lambda _, h: matmul(h, u)[:, :units], h)

    chained = adapter.compiled(chain)
    per_step = _median_time(lambda: chained(h0, u), repeats, adapter) / CELL_CALLS
    cell_s = max(per_step - (2 * dispatch_s if adapter.dispatches_per_op() else 0.0), 0.0)  # matmul, slice

    m = TRIAD_N[kind]
    x, y = (adapter.to_device(rng.standard_normal(m, dtype=np.float32)) for _ in range(2))
    triad_s = _median_time(lambda: add(x, y), repeats, adapter)
    busy = watch.stop()
    return Ceilings(gemm_flops_per_s=rates[fastest], gemm_n=n, cell_gemm_s=cell_s,
                    cell_shape=(batch_size, units, 4 * units), triad_bytes_per_s=3 * 4 * m / triad_s, triad_n=m,
                    dispatch_s=dispatch_s, measure_s=time.perf_counter() - started,
                    spec_flops_per_s=spec_peak(adapter.device.name) if kind == "gpu" else None,
                    other_cpu_share=busy.share, contended=busy.contended, gemm_path=fastest,
                    gemm_paths_flops_per_s=rates)


def _median_time(run: Callable[[], Any], repeats: int, adapter: backends.Adapter) -> float:
    adapter.sync(run())  # the first call compiles or warms what later calls reuse
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        adapter.sync(run())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# Dense float32 (non-tensor-core) peaks from the vendors' spec sheets, FLOP/s: labelled spec, never measured.
# Longer names first: "H100 PCIe" is not the SXM part's 67 TFLOP/s.
SPEC_FP32_FLOPS = {"H100 PCIe": 51e12, "H100 NVL": 60e12, "H200": 67e12, "H100": 67e12, "A100": 19.5e12,
                   "L4": 30.3e12, "T4": 8.1e12}


def spec_peak(device_name: str) -> float | None:
    """The spec-sheet float32 peak of a known GPU (by the name the backend reports), else None."""
    for model, peak in SPEC_FP32_FLOPS.items():
        if model in device_name:
            return peak
    return None


def cached(key: str, batch_size: int, units: int, cache_dir: Path | None = None) -> Ceilings:
    """The ceilings for ``key`` (machine, backend, device, threads) and this recurrent shape: from the cache
    when measured before, else measured now and stored (bench/cache.py) unless measured while contended."""
    data = cache.cached("ceilings", f"v{CACHE_VERSION}-{key}-b{batch_size}-u{units}",
                        lambda: measure(batch_size, units).as_dict(), cache_dir,
                        keep=lambda value: not value.get("contended"))
    try:
        return Ceilings(**{**data, "cell_shape": tuple(data["cell_shape"])})
    except (TypeError, KeyError):  # a file of another layout: measure again
        return Ceilings(**measure(batch_size, units).as_dict())
