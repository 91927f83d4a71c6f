"""Which results belong together: the newest run per table line, and one run's processes as one number.

A run of ``bench run --repeat N`` is N processes sharing a run id. Every consumer (report, plots,
compare, calibrate, history) picks results and aggregates processes through these functions, so a
"median" means the same thing in every table: the median of the process medians, with the 95% Student t
interval of the typical process median over processes (``bench.stats.process_interval``: on log medians).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from bench import stats
from bench.results import GroupKey, Result


def started_order(result: Result) -> tuple[float, str]:
    """Sort key: run start time, then file name (files are named by start time too)."""
    try:
        stamp = datetime.fromisoformat(result.run.started).timestamp()
    except (ValueError, TypeError, OverflowError, OSError):
        stamp = float("-inf")
    return stamp, result.file


def run_of(result: Result) -> str:
    """The run a result belongs to: the processes of one ``bench run --repeat N`` share a run id; a
    process started on its own (no run id) is a run by itself."""
    return result.run.run_id or result.file


def latest(results: Iterable[Result], key: Callable[[Result], Any] | None = None) -> list[Result]:
    """Keep, per ``key`` (default: group + table line), only the results of the newest run (all its processes).

    The newest run is the one whose newest file started last; a run of several processes keeps
    every process, so that it can be aggregated (``aggregate``).
    """
    key = key or (lambda r: (r.group, r.line))
    newest: dict[Any, tuple[tuple[float, str], str]] = {}
    results = list(results)
    for r in results:
        k = key(r)
        if k not in newest or started_order(r) > newest[k][0]:
            newest[k] = (started_order(r), run_of(r))
    return [r for r in results if newest[key(r)][1] == run_of(r)]


def by_group(results: Iterable[Result]) -> dict[GroupKey, list[Result]]:
    groups: dict[GroupKey, list[Result]] = {}
    for r in results:
        groups.setdefault(r.group, []).append(r)
    return dict(sorted(groups.items(), key=lambda item: tuple(str(v) for v in item[0])))


def rounds_of(r: Result) -> list[float]:
    """A process's round times (seconds); its median alone where the file holds no rounds."""
    return list(r.stats.data) if r.stats.data else [r.stats.median]


@dataclass(frozen=True)
class Aggregate:
    """One step benchmark over the processes of one run (``--repeat N``)."""

    median_ms: float  # the median of the process medians
    # The 95% t interval of the typical process median (their geometric mean, on log scale: stats.process_interval);
    # None for one process.
    low_ms: float | None
    high_ms: float | None
    processes: int
    percentiles_ms: tuple[float, float, float] | None  # p50, p90, p99 of every process's rounds pooled


def aggregate(members: Sequence[Result]) -> Aggregate | None:
    """The processes of one benchmark in one run, as one number with its interval; None without statistics."""
    timed = [r for r in members if r.median_ms is not None]
    if not timed:
        return None
    medians = [r.median_ms for r in timed]
    interval = stats.process_interval(medians)
    return Aggregate(float(np.median(medians)), interval.low, interval.high, len(timed), _tail_ms(timed))


def _tail_ms(members: Sequence[Result]) -> tuple[float, float, float] | None:
    rounds = [r.stats.data for r in members if r.stats is not None and r.stats.data]
    if rounds and len(rounds) == len(members):
        tail = stats.percentiles([t for data in rounds for t in data])
        return tail["p50"] * 1e3, tail["p90"] * 1e3, tail["p99"] * 1e3
    recorded = [(r.step.tail.p50_s, r.step.tail.p90_s, r.step.tail.p99_s) for r in members if r.step and r.step.tail]
    if not recorded:
        return None  # older files: neither the rounds nor their percentiles
    return tuple(float(np.median(column)) * 1e3 for column in zip(*recorded, strict=True))


def measured_on(found: Iterable[Result]) -> dict | None:
    """The machine fingerprint the results record (the first that has one), or None."""
    return next((r.run.fingerprint for r in found if r.run.fingerprint), None)
