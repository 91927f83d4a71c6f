"""``python -m bench bisect PACKAGE GOOD BAD -k BENCHMARK``: the first release that changed a benchmark.

The releases between GOOD and BAD come from the package index as pip is configured, or from one
local folder of wheels (``--find-links``: how the tests plant a known change). Each probe measures a
release against GOOD in the same sitting, interleaved, N processes each (``bench.matrix``: every
release in its own cached environment), and ``compare``'s gate judges it: a release is on the bad
side when a benchmark that changed between the ends changes the same way (slower, or faster)
against GOOD. GOOD is measured again beside every probe, so that a drift of the machine over a
long bisection is not taken for a change. First the ends themselves are measured: when the gate
sees no change between them, there is nothing to search and it says so.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import InvalidVersion, Version

from bench import compare, environments, index, matrix
from bench.results import Result, load, results_of
from bench.tables import MISSING, table

GOOD, BAD = "good", "bad"
BISECT_FILE = "BISECT.md"


class BisectError(ValueError):
    """GOOD or BAD is not a release, or the two are the same; the message names the nearest releases."""


def releases_between(name: str, good: str, bad: str, config: index.IndexConfig) -> list[str]:
    """The releases from GOOD to BAD, both included, oldest first (pre-releases only when an end is one)."""
    try:
        ends = Version(good), Version(bad)
    except InvalidVersion as exc:
        raise BisectError(f"{exc}: GOOD and BAD are release versions, e.g. 3.10.0") from None
    if ends[0] == ends[1]:
        raise BisectError(f"GOOD and BAD are the same release ({good})")
    available = index.releases(name, config)
    pre = any(v.is_prerelease for v in ends)
    listed = [v for v in available if pre or not v.is_prerelease]
    for end, text in zip(ends, (good, bad), strict=True):
        if end not in available:
            near = ", ".join(map(str, index.nearest(text, listed))) or "none"
            raise BisectError(f"{name} {text} is not a release on {config.tried()}; nearest releases: {near}")
    low, high = sorted(ends)
    between = [v for v in listed if low <= v <= high]
    return [str(v) for v in (between if ends[0] < ends[1] else reversed(between))]


def direction(change: compare.Change) -> int:
    """+1 for a significant slowdown past the limit, -1 for a significant speedup, 0 otherwise."""
    if change.regression and change.metric == "latency":
        return 1
    return -1 if change.verdict == "faster" else 0


@dataclass
class Probe:
    """One release measured against GOOD, and which side of the change it fell on."""

    version: str
    changes: list[compare.Change]
    side: str  # GOOD or BAD
    seconds: float

    def evidence(self, names: Sequence[str]) -> str:
        """'test_train_step[jax-cpu] 1.482 [1.451, 1.513] REGRESSION (slower)' for the benchmarks that matter."""
        parts = []
        for ch in self.changes:
            if ch.metric == "latency" and ch.name in names:
                ratio = (f"{ch.test.ratio:.3f} [{ch.test.low:.3f}, {ch.test.high:.3f}]" if ch.test
                         else f"{1 + ch.change / 100:.3f}" if ch.change is not None else MISSING)
                parts.append(f"{ch.name} {ratio} {ch.verdict}")
        return "; ".join(parts) or "no matching benchmark measured"


@dataclass
class Bisection:
    package: str
    good: str
    bad: str
    versions: list[str]  # GOOD .. BAD, in search order
    ends: Probe | None = None
    changed: dict[str, int] = field(default_factory=dict)  # benchmark -> direction, between the ends
    probes: list[Probe] = field(default_factory=list)
    first_bad: str | None = None
    last_good: str | None = None
    seconds: float = 0.0

    @property
    def found(self) -> bool:
        return self.first_bad is not None


# measure(versions) -> each version's results, the versions measured together, interleaved; versions[0] is GOOD.
Measure = Callable[[Sequence[str]], Mapping[str, Sequence[Result]]]


def bisect(package: str, versions: Sequence[str], measure: Measure, *, threshold: float = compare.DEFAULT_THRESHOLD,
           confidence: float = compare.DEFAULT_CONFIDENCE, min_processes: int = compare.MIN_PROCESSES,
           say: Callable[[str], None] = print) -> Bisection:
    """Binary search over ``versions`` (GOOD first, BAD last) for the first one on BAD's side of the change."""
    start = time.perf_counter()  # wall time of whole probes (child processes that sync their own steps)
    good, bad = versions[0], versions[-1]
    found = Bisection(package, good, bad, list(versions))
    # the first bad one is one of the n - 1 releases after GOOD: binary search over them
    steps = math.ceil(math.log2(len(versions) - 1)) if len(versions) > 2 else 0
    say(f"bisect: {package} {good} (good) .. {bad} (bad): {len(versions)} releases, about {steps} probe(s) after "
        "the ends")

    def judge(version: str) -> Probe:
        began = time.perf_counter()
        measured = measure([good, version])
        changes, _ = compare.compare_results(measured.get(good, []), measured.get(version, []), threshold,
                                             confidence=confidence, min_processes=min_processes)
        probe = Probe(version, changes, GOOD, time.perf_counter() - began)
        if found.changed and any(direction(ch) == found.changed.get(ch.name) != 0 for ch in changes):
            probe.side = BAD
        return probe

    found.ends = judge(bad)
    found.changed = {ch.name: direction(ch) for ch in found.ends.changes if direction(ch)}
    names = sorted(found.changed) or [ch.name for ch in found.ends.changes if ch.metric == "latency"]
    ungated = [ch for ch in found.ends.changes if ch.verdict.startswith("cannot gate")]
    if not found.changed and ungated:
        raise BisectError(f"the gate cannot judge the ends: {ungated[0].verdict}")
    if not found.changed:
        say(f"bisect: the ends do not differ beyond the gate: {found.ends.evidence(names)}")
        found.seconds = time.perf_counter() - start
        return found
    found.ends.side = BAD
    say(f"bisect: the ends differ: {found.ends.evidence(names)}")
    low, high = 0, len(versions) - 1
    while high - low > 1:
        middle = (low + high) // 2
        probe = judge(versions[middle])
        found.probes.append(probe)
        say(f"bisect: probe {len(found.probes)}: {package} {probe.version} against {good}: "
            f"{probe.evidence(names)} -> {probe.side} side ({probe.seconds:.0f} s)")
        if probe.side == BAD:
            high = middle
        else:
            low = middle
    found.first_bad, found.last_good = versions[high], versions[low]
    found.seconds = time.perf_counter() - start
    say(f"bisect: first {package} release on the bad side: {found.first_bad} (last on the good side: "
        f"{found.last_good}); {found.seconds:.0f} s in all")
    return found


def render(found: Bisection, style: str = "md") -> str:
    """BISECT.md: the answer, every probe with its evidence, the gate's table for the first bad release, the time."""
    names = sorted(found.changed) or [ch.name for ch in (found.ends.changes if found.ends else [])
                                       if ch.metric == "latency"]
    out = [f"# bisect: {found.package} {found.good} (good) .. {found.bad} (bad)", ""]
    if found.found:
        out.append(f"First release on the bad side: **{found.package} {found.first_bad}** (last on the good side: "
                   f"{found.last_good}).")
    else:
        out.append("The ends do not differ beyond the gate: nothing to search.")
    probes = ([found.ends] if found.ends else []) + found.probes
    rows = [(p.version, "ends" if p is found.ends else str(i), p.side, p.evidence(names), f"{p.seconds:.0f}")
            for i, p in enumerate(probes)]
    out += ["", f"Each release against {found.good}, measured beside it in the same sitting:", "",
            table(("Release", "Probe", "Side", "Ratio to good [CI] and verdict", "Seconds"), rows, style), ""]
    evidence = next((p for p in probes if p.version == found.first_bad), None)
    if evidence is not None:
        out += [f"## Evidence: {found.package} {evidence.version} against {found.good}", "",
                compare.render_comparison(evidence.changes, style), ""]
    out.append(f"Total time: {found.seconds:.0f} s.")
    return "\n".join(out) + "\n"


def measuring(package: str, *, backends: list[str], pytest_args: list[str], repeat: int, run_dir: Path, root: Path,
              config: index.IndexConfig, prepare: Callable[..., environments.Environment] = environments.prepare
              ) -> Measure:
    """The real ``Measure``: the versions as cells of a matrix (``bench.matrix``), each probe in its own folder."""
    probes = itertools.count()
    build = functools.partial(prepare, index=config)

    def measure(versions: Sequence[str]) -> dict[str, list[Result]]:
        grid = [matrix.Cell((f"{package}=={version}",)) for version in versions]
        number = next(probes)
        folder = run_dir / ("ends" if number == 0 else f"probe-{number}-{versions[-1]}")
        done = matrix.run_matrix(grid, reference=grid[0], backends=backends, pytest_args=pytest_args, repeat=repeat,
                                 run_dir=folder, root=root, prepare=build)
        if done.problems:
            raise BisectError("; ".join(f"{name} {problem}" for name, problem in done.problems.items()))
        return {version: results_of(load([done.folder(cell)])[0]) for version, cell in zip(versions, grid,
                                                                                             strict=True)}

    return measure
