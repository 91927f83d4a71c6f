"""``python -m bench history DIR...``: each benchmark's median across result files, in time order.

One point per run (a run of several processes, ``--repeat N``, is one point: the median of its
process medians), with the commit it measured (pytest-benchmark's ``commit_info``), its date and
machine. Step changes are marked by a rule, not a model: a point starts a step when it and the
``sustain - 1`` points after it (default: 2 points in all) all differ from the level before it (the
median of the points since the previous step) by more than the threshold, in the same direction.
One point alone past the threshold is a spike, not a step; at the end of the history, where too
few points follow to tell, it is marked "unconfirmed". A change of machine between two points is
said on the point, since a step there is the machine's as likely as the code's.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from bench.fingerprint import describe, machine_key
from bench.results import GroupKey, Result, Run, results_of
from bench.selection import aggregate, run_of, started_order
from bench.tables import fmt, fmt_ms, table

DEFAULT_THRESHOLD = 0.10
DEFAULT_SUSTAIN = 2


@dataclass
class Point:
    """One run of one benchmark."""

    started: str  # ISO time of the run's first process
    commit: str  # short hash, "+dirty" when the working tree had changes; "unknown" when not recorded
    machine: str  # bench.fingerprint.describe of the fingerprint (or pytest-benchmark's cpu brand for older files)
    machine_key: str
    versions: str  # Keras and backend versions
    median_ms: float
    processes: int
    files: list[str]
    change: float | None = None  # vs the previous point, relative
    step: str = ""  # "step +12.0%", "step -8.1%", "past threshold, unconfirmed"
    note: str = ""  # machine or versions changed since the previous point

    @property
    def when(self) -> datetime:
        return datetime.fromisoformat(self.started)


Series = dict[tuple[str, GroupKey], list[Point]]


def collect(runs: Sequence[Run], name_contains: str = "") -> Series:
    """Points per (benchmark name, comparison group), oldest first."""
    commits = {str(run.path): run.commit_info for run in runs}
    by_benchmark: dict[tuple[str, GroupKey], dict[str, list[Result]]] = {}
    for r in results_of(runs):
        if name_contains in r.name and r.stats is not None:
            by_benchmark.setdefault((r.name, r.group), {}).setdefault(run_of(r), []).append(r)
    series: Series = {}
    for key, by_run in sorted(by_benchmark.items(), key=lambda item: (str(item[0][1]), item[0][0])):
        points = [_point(members, commits.get(members[0].file, {})) for members in by_run.values()]
        points.sort(key=lambda p: (p.when, p.files[0]))
        series[key] = points
    return series


def _point(members: list[Result], commit_info: dict) -> Point:
    members = sorted(members, key=started_order)
    first = members[0]
    summary = aggregate(members)
    commit = str(commit_info.get("id") or "unknown")[:12]
    if commit_info.get("dirty"):
        commit += "+dirty"
    fingerprint = first.run.fingerprint
    c = first.context
    return Point(started=first.run.started, commit=commit,
                 machine=describe(fingerprint) if fingerprint else f"{c.device_name} (no fingerprint)",
                 machine_key=machine_key(fingerprint) if fingerprint else c.device_name,
                 versions=f"keras {c.keras}, {c.backend} {c.backend_version}", median_ms=summary.median_ms,
                 processes=summary.processes, files=[m.file for m in members])


def mark_steps(points: list[Point], threshold: float = DEFAULT_THRESHOLD, sustain: int = DEFAULT_SUSTAIN) -> None:
    """Fill each point's change, step and note (see the module's rule)."""
    if sustain < 1:
        raise ValueError("sustain must be at least 1")
    level_from = 0
    for i, point in enumerate(points):
        if i == 0:
            continue
        previous = points[i - 1]
        point.change = point.median_ms / previous.median_ms - 1
        notes = []
        if point.machine_key != previous.machine_key:
            notes.append(f"machine changed: {previous.machine} → {point.machine}")
        if point.versions != previous.versions:
            notes.append(f"{previous.versions} → {point.versions}")
        point.note = "; ".join(notes)
        if i < level_from + 1:
            continue
        level = float(np.median([p.median_ms for p in points[level_from:i]]))
        window = [p.median_ms / level - 1 for p in points[i : i + sustain]]
        up, down = all(d > threshold for d in window), all(d < -threshold for d in window)
        if len(window) == sustain and (up or down):
            point.step = f"step {float(np.median(window)):+.1%}"
            level_from = i
        elif len(window) < sustain and (up or down):
            point.step = f"past threshold, unconfirmed (a step needs {sustain} points)"


def render(series: Series, style: str = "md") -> str:
    if not series:
        return "No benchmarks with statistics in these files.\n"
    out = []
    headers = ("Date", "Commit", "Machine", "Versions", "Median ms", "Processes", "Change", "Step", "Note")
    for (name, group), points in series.items():
        heading = f"## {name} · {group.label}"
        cells = [(p.started[:19].replace("T", " "), p.commit, p.machine, p.versions, fmt_ms(p.median_ms),
                  str(p.processes), fmt(p.change, "+.1%"), p.step, p.note)
                 for p in points]
        out += [heading if style == "md" else heading.removeprefix("## "), "", table(headers, cells, style), ""]
    return "\n".join(out)


def render_csv(series: Series) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", "group", "started", "commit", "machine", "versions", "median_ms", "processes",
                     "change", "step", "note", "files"])
    for (name, group), points in series.items():
        for p in points:
            writer.writerow([name, group.slug, p.started, p.commit, p.machine, p.versions, p.median_ms, p.processes,
                             "" if p.change is None else p.change, p.step, p.note, " ".join(p.files)])
    return buffer.getvalue()
