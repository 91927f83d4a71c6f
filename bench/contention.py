"""Was the machine busy? The CPU time other processes took while a benchmark's timed rounds ran.

A benchmark timed while something else ran measures the other thing too (on a 2-core machine torch's
train step ran 3.1 times slower beside one busy process: experiments/contention.py). ``Watch`` reads the
kernel's counters (through psutil: ``/proc/stat`` per CPU on Linux) when the rounds start and when
they end, and reports what the CPUs this process may run on spent busy that this process (and its
children) did not spend, plus the time a hypervisor gave them to other machines (steal).
The counters are read outside the timed calls.

On a GPU the same watch reads NVML's per-process SM utilisation over the rounds (``bench.gpu``):
other processes' kernels share the GPU's SMs with the timed ones. It uses the run's ``GpuWatch``
(``use_gpu_watch``, from the session), which knows this run's NVML pid even inside a container.

What it cannot see: another process's cache and memory-bandwidth pressure on CPUs this one is not
allowed to use, and children that exited during the rounds (their CPU time is counted as other
processes'). Ranks of a ``--processes`` run are separate processes: each counts the others.
"""

from __future__ import annotations

import dataclasses
import time

import psutil

from bench import gpu
from bench.results import Contention

# Past this share of the CPUs' time taken by others (other processes + steal), a line is "contended": a setting,
# to be checked against the watch's readings alone and beside one busy process (experiments/contention.py).
CONTENDED_SHARE = 0.10
SOURCE = "psutil: per-CPU busy time of the CPUs this process may use, minus this process tree's CPU time"


def _cpus() -> list[int]:
    try:
        return sorted(psutil.Process().cpu_affinity())
    except (AttributeError, psutil.Error):  # no affinity on macOS: every CPU
        return list(range(psutil.cpu_count() or 1))


def _busy_and_steal(cpus: list[int]) -> tuple[float, float]:
    """Seconds the CPUs ``cpus`` spent busy (any process) and stolen, since boot."""
    per_cpu = psutil.cpu_times(percpu=True)
    busy = steal = 0.0
    for i in cpus:
        if i >= len(per_cpu):
            continue
        t = per_cpu[i]
        # user includes guest and nice includes guest_nice on Linux; idle and iowait are not busy.
        busy += t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
        steal += getattr(t, "steal", 0.0)
    return busy, steal


def _own_cpu() -> dict[int, float]:
    """CPU seconds of this process and each living descendant, by pid."""
    me = psutil.Process()
    found = {}
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.Error:  # exited between the listing and the read
            continue
        found[proc.pid] = t.user + t.system
    return found


_GPU_WATCH: list[gpu.GpuWatch] = []  # the run's, set by the session on GPU runs


def use_gpu_watch(watch: gpu.GpuWatch | None) -> None:
    """Watch this GPU too (the session's ``GpuWatch``: it knows which NVML pid is this run); None: CPU only."""
    _GPU_WATCH[:] = [watch] if watch is not None and watch.available else []


class Watch:
    """Started where the timed rounds start; ``stop()`` where they end returns the ``Contention`` record.

    Its clock times a window, not device work: every round inside it already ended in the adapter's sync
    (bench/timing.py), so the window closes after the device is done.
    """

    def __init__(self, threshold: float | None = None) -> None:
        self.threshold = CONTENDED_SHARE if threshold is None else threshold
        self.cpus = _cpus()
        self._gpu_since = int(time.time() * 1e6)  # NVML's samples carry CPU timestamps in microseconds
        self._own = _own_cpu()
        self._busy, self._steal = _busy_and_steal(self.cpus)
        self._wall = time.monotonic()

    def stop(self) -> Contention:
        wall = time.monotonic() - self._wall
        busy, steal = _busy_and_steal(self.cpus)
        own_now = _own_cpu()
        own = sum(t - self._own.get(pid, 0.0) for pid, t in own_now.items())
        found = contention(wall, len(self.cpus), busy - self._busy, max(0.0, own), steal - self._steal,
                           self.threshold)
        if not _GPU_WATCH:
            return found
        percent, how = gpu.others_sm_percent(_GPU_WATCH[0], self._gpu_since)
        busy_gpu = percent is not None and percent >= self.threshold * 100
        return dataclasses.replace(found, gpu_other_sm_percent=percent, gpu_source=how,
                                   contended=found.contended or busy_gpu)


def contention(wall_s: float, cpus: int, busy_s: float, own_s: float, steal_s: float,
               threshold: float = CONTENDED_SHARE) -> Contention:
    """The record from counter differences: others' CPU time is the busy time this process tree did not spend.

    The kernel's per-CPU counters tick at the scheduler's clock (10 ms at 100 Hz), so a short window
    can read a little more or less than the truth; the share is clipped to [0, 1].
    """
    other = max(0.0, busy_s - own_s)
    capacity = wall_s * cpus
    share = min(1.0, max(0.0, (other + max(0.0, steal_s)) / capacity)) if capacity > 0 else 0.0
    return Contention(wall_s=wall_s, cpus=cpus, other_cpu_s=other, steal_s=max(0.0, steal_s), share=share,
                      contended=share >= threshold, threshold=threshold, source=SOURCE)


def describe(c: Contention) -> str:
    """'other processes took 46% of the 2 CPUs' time while it ran (contended from 10%)', for warnings."""
    capacity = c.wall_s * c.cpus
    others = c.other_cpu_s / capacity if capacity else 0.0
    steal = f" and the hypervisor {c.steal_s / capacity:.0%} more (steal)" if capacity and c.steal_s else ""
    cpus = f"{c.cpus} CPUs'" if c.cpus != 1 else "1 CPU's"
    on_gpu = (f"; on the GPU, other processes' kernels kept {c.gpu_other_sm_percent:.0f}% of the SMs busy"
              if c.gpu_other_sm_percent else "")
    return (f"other processes took {others:.0%}{steal} of the {cpus} time while "
            f"it ran{on_gpu} (contended from {c.threshold:.0%})")


class Contended(RuntimeError):
    """--strict-cpu: a benchmark's timed rounds ran beside other busy processes."""


def warning(kind: str, c: Contention | None, strict: bool) -> str | None:
    """The console line for a contended benchmark (None when it was not); raises Contended when ``strict``.

    The record keeps the figures either way: the report marks the line and compare does not gate it.
    """
    if c is None or not c.contended:
        return None
    message = f"{kind} was contended: {describe(c)}"
    if strict:
        raise Contended(f"--strict-cpu: {message}")
    return f"kerasbench WARNING: {message}. Run one thing at a time, or pass --strict-cpu to fail."
