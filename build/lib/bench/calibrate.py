"""``python -m bench calibrate``: how far apart the same code lands between processes on this machine.

It runs the benchmarks k times per backend (an A/A run, through the runner: ``--repeat k``,
interleaved) and stores, per benchmark, the spread of the k process medians: the largest ratio
between two of them, minus 1 (``bench.stats.process_spread``). That is the change this machine
produces with no change in the code, so ``compare`` uses it as the noise floor: a slowdown counts
only past the larger of ``--threshold`` and the floor.

The floors live in one small JSON file beside the results (``<results>/calibration.json``), one
entry per machine, keyed by the fingerprint's machine part (``bench.fingerprint.machine_key``: CPU
model, usable cores, threads, GPU), so a floor measured on one machine is never applied to another.
Each entry also says what the gate can resolve here: the k processes split into two A/A sides
(even and odd repeats, interleaved as ``ab`` interleaves base and head), and the smallest slowdown
the gate would flag with the noise between them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from bench import stats
from bench.fingerprint import describe, machine_key
from bench.results import CALIBRATION_MARKER, Result, write_json_atomic
from bench.selection import latest, rounds_of
from bench.tables import fmt, fmt_ms, table

CALIBRATION_FILE = "calibration.json"
DEFAULT_REPEAT = 6  # 3 + 3 processes: the split says what 3 processes a side resolve


@dataclass(frozen=True)
class Floor:
    """One benchmark's noise between processes on this machine."""

    key: str  # bench.compare.noise_key: test id and comparison group
    processes: int
    median_ms: float  # the median of the process medians
    spread: float  # the noise floor: max / min of the process medians, minus 1
    variation: float | None  # coefficient of variation of the process medians
    split: str  # "3 vs 3": the A/A sides compared below
    split_ratio: float | None  # odd / even repeats, median of process medians
    split_p: float | None
    detects: float | None  # the smallest slowdown the gate would flag with the noise of the two A/A sides


def noise_key(r: Result) -> str:
    """How a floor is named: the test id and its comparison group (compare looks floors up by it)."""
    return f"{r.name} ({r.group.slug})"


def measure(found: Sequence[Result], confidence: float = stats.DEFAULT_CONFIDENCE) -> list[Floor]:
    """The floors of every benchmark with at least two processes in its newest run."""
    by_key: dict[str, list[Result]] = {}
    for r in latest(found, noise_key):
        if r.stats is not None:
            by_key.setdefault(noise_key(r), []).append(r)
    floors = []
    for key, members in sorted(by_key.items()):
        if len(members) < 2:
            continue
        medians = [r.stats.median for r in members]
        even = [rounds_of(r) for r in members if r.run.repeat_index % 2 == 0]
        odd = [rounds_of(r) for r in members if r.run.repeat_index % 2 == 1]
        test = stats.hierarchical_bootstrap(even, odd, confidence) if even and odd else None
        floors.append(Floor(
            key=key, processes=len(members), median_ms=float(stats.process_interval(medians).estimate) * 1e3,
            spread=stats.process_spread(medians), variation=stats.process_variation(medians),
            split=f"{len(even)} vs {len(odd)}", split_ratio=test and test.ratio, split_p=test and test.p_value,
            detects=None if test is None else test.smallest_detectable(),
        ))
    return floors


def fingerprint_of(found: Sequence[Result]) -> dict:
    """The machine the results were measured on; ValueError if they come from several, or record none."""
    prints = {machine_key(r.run.fingerprint): r.run.fingerprint for r in found if r.run.fingerprint}
    if not prints:
        raise ValueError("these result files record no machine fingerprint: run calibrate with this kerasbench")
    if len(prints) > 1:
        raise ValueError("these result files come from several machines: calibrate one machine at a time")
    return next(iter(prints.values()))


def write(path: str | os.PathLike, fingerprint: dict, floors: Sequence[Floor], source: str) -> Path:
    """Store the floors under this machine's key, keeping other machines' entries."""
    path = Path(path)
    document = _read(path)
    document["machines"][machine_key(fingerprint)] = {
        "fingerprint": fingerprint, "measured": datetime.now(timezone.utc).isoformat(), "source": source,
        "floors": {f.key: asdict(f) for f in floors},
    }
    write_json_atomic(path, document)
    return path


def load_floors(path: str | os.PathLike, fingerprint: Mapping) -> dict[str, float]:
    """``{noise_key: floor}`` for the machine of ``fingerprint``; empty without a file or an entry for it."""
    entry = _read(Path(path))["machines"].get(machine_key(dict(fingerprint)))
    if not entry:
        return {}
    return {key: float(floor["spread"]) for key, floor in entry.get("floors", {}).items()}


def floors_for(path: Path, fingerprint: Mapping | None, *, required: bool = False) -> tuple[dict[str, float], str]:
    """The floors in ``path`` for the machine of ``fingerprint``, and a line saying which were used.

    No file gives no floors (a ValueError where ``required``: the user named it). Without a
    fingerprint there are none either: a floor of another machine must never apply.
    """
    if not path.exists():
        if required:
            raise ValueError(f"no calibration file {path}")
        return {}, ""
    if fingerprint is None:
        return {}, f"note: current results record no machine fingerprint; {path} not used"
    floors = load_floors(path, fingerprint)
    return floors, (f"noise floors: {len(floors)} benchmark(s) from {path} for {describe(dict(fingerprint))}"
                    if floors else f"noise floors: none in {path} for this machine ({describe(dict(fingerprint))})")


def _read(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {CALIBRATION_MARKER: 1, "machines": {}}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable calibration file ({exc})") from None
    if not isinstance(document, dict) or CALIBRATION_MARKER not in document:
        raise ValueError(f"{path}: not a kerasbench calibration file")
    document.setdefault("machines", {})
    return document


def render(floors: Sequence[Floor], fingerprint: dict, style: str = "md") -> str:
    headers = ("Benchmark", "Processes", "Median ms", "Noise floor (max/min - 1)", "CV", "A/A split",
               "Split ratio", "p", "Detects ≥")
    cells = [(f.key, str(f.processes), fmt_ms(f.median_ms), f"{f.spread:.1%}",
              fmt(f.variation, ".1%"), f.split, fmt(f.split_ratio, ".3f"), fmt(f.split_p, ".4f"),
              fmt(f.detects, ".1%")) for f in floors]
    return "\n".join([f"Noise between processes on {describe(fingerprint)}:", "",
                      table(headers, cells, style), "",
                      "Noise floor: the largest ratio between two process medians of the same code, minus 1; "
                      "compare gates on the larger of it and --threshold. Detects ≥: the smallest slowdown the "
                      "gate would flag with the noise between the even and odd repeats (A/A sides of that "
                      "size)."]) + "\n"
