"""``python -m bench calibrate``: how far apart the same code lands between processes on this machine.

It runs the benchmarks k times per backend (an A/A run, through the runner: ``--repeat k``,
interleaved) and stores, per benchmark, the variance of the log process medians with its degrees
of freedom (``bench.stats.process_noise``). ``compare``'s test pools that variance into each side's
(``bench.stats.log_ratio_test``): with 12 calibrated processes, 3 processes a side test on about 14
degrees of freedom instead of 4, which is what lets few processes resolve a small slowdown. (The
first version stored the largest spread between two process medians and raised the threshold to
it; the significance test already counts that noise, so the floor counted it twice.)

The calibration lives in one small JSON file beside the results (``<results>/calibration.json``),
one entry per machine, keyed by the fingerprint's machine part (``bench.fingerprint.machine_key``:
CPU model, usable cores, threads, GPU), so noise measured on one machine is never applied to
another. Each entry also says what the gate resolves here: the slowdown flagged with at least 80% power
at ``--repeat`` processes a side (one line among a CI run's), the processes a side that flag a 5%
slowdown with 90% power, and whether the process medians fell into two modes (then the variance
describes neither mode, and compare refuses to gate such lines anyway).

Files of the first version (``floors``: spread and coefficient of variation) are read by upgrading
each entry: the variance of log medians from the coefficient of variation, ``log(1 + cv^2)`` (the
lognormal relation), with processes - 1 degrees of freedom. Entries without a coefficient are
dropped, and the note says so. A file of a newer version is refused.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from bench import gate, stats
from bench.fingerprint import describe, machine_key
from bench.results import CALIBRATION_MARKER, Result, write_json_atomic
from bench.selection import latest
from bench.tables import fmt, fmt_ms, table

CALIBRATION_FILE = "calibration.json"
VERSION = 2  # 1: "floors" (max spread, coefficient of variation); 2: "noise" (variance of log medians)
DEFAULT_REPEAT = 12  # processes per backend: 11 degrees of freedom to pool into compare's test
LINES = 10  # the gated lines of a CI run (bench.gatesim.CI_LINES): one slowed line is tested at alpha / LINES
TARGET_SLOWDOWN, TARGET_POWER = 0.05, 0.90


@dataclass(frozen=True)
class Calibration:
    """One benchmark's noise between processes on this machine."""

    key: str  # noise_key: test id and comparison group
    processes: int
    median_ms: float  # the geometric mean of the process medians
    log_variance: float  # variance of natural-log process medians, ddof=1: what compare pools in
    df: int  # its degrees of freedom
    spread: float  # max / min of the process medians, minus 1 (for reading; the gate does not use it)
    modes: str = ""  # "bimodal (...): ..." when the process medians fell into two modes
    detects: float | None = None  # slowdown flagged with at least 80% power at `at_processes` a side
    at_processes: int = gate.MIN_PROCESSES
    processes_for_target: int | None = None  # a side, for TARGET_SLOWDOWN at TARGET_POWER (None: over 50)
    upgraded: str = ""  # how a version-1 entry was converted

    @property
    def noise(self) -> stats.ProcessNoise:
        return stats.ProcessNoise(self.log_variance, self.df)


def noise_key(r: Result) -> str:
    """How an entry is named: the test id and its comparison group (compare looks entries up by it)."""
    return f"{r.name} ({r.group.slug})"


def resolution(noise: stats.ProcessNoise, processes: int, alpha: float = gate.DEFAULT_ALPHA,
               threshold: float = 0.0) -> tuple[float, int | None]:
    """(slowdown flagged with at least 80% power at ``processes`` a side, processes a side for 5% at 90%) at
    this noise."""
    level = alpha / LINES
    detects = stats.planned_slowdown(noise, processes, level, threshold)
    needed = next((n for n in range(2, 51)
                   if stats.planned_power(noise, n, TARGET_SLOWDOWN, level, threshold) >= TARGET_POWER), None)
    return detects, needed


def measure(found: Sequence[Result], processes: int = gate.MIN_PROCESSES) -> list[Calibration]:
    """The calibration of every benchmark with at least two processes in its newest run.

    ``processes``: the processes a side the "detects" column is for (compare's or the CI's).
    """
    by_key: dict[str, list[Result]] = {}
    for r in latest(found, noise_key):
        if r.stats is not None:
            by_key.setdefault(noise_key(r), []).append(r)
    entries = []
    for key, members in sorted(by_key.items()):
        medians = [r.stats.median for r in members]
        noise = stats.process_noise(medians)
        if noise is None:
            continue
        modes = stats.process_modes([medians])
        detects, needed = resolution(noise, processes)
        entries.append(Calibration(
            key=key, processes=len(members), median_ms=stats.process_interval(medians).estimate * 1e3,
            log_variance=noise.variance, df=noise.df, spread=stats.process_spread(medians),
            modes=modes.describe(names=("",), scale=1e3) if modes else "",
            detects=detects, at_processes=processes, processes_for_target=needed))
    return entries


def fingerprint_of(found: Sequence[Result]) -> dict:
    """The machine the results were measured on; ValueError if they come from several, or record none."""
    prints = {machine_key(r.run.fingerprint): r.run.fingerprint for r in found if r.run.fingerprint}
    if not prints:
        raise ValueError("these result files record no machine fingerprint: run calibrate with this kerasbench")
    if len(prints) > 1:
        raise ValueError("these result files come from several machines: calibrate one machine at a time")
    return next(iter(prints.values()))


def write(path: str | os.PathLike, fingerprint: dict, entries: Sequence[Calibration], source: str) -> Path:
    """Store the entries under this machine's key, keeping other machines' entries (upgraded to this version)."""
    path = Path(path)
    document, _ = _read(path)
    document["machines"][machine_key(fingerprint)] = {
        "fingerprint": fingerprint, "measured": datetime.now(timezone.utc).isoformat(), "source": source,
        "noise": {e.key: asdict(e) for e in entries},
    }
    write_json_atomic(path, document)
    return path


def load(path: str | os.PathLike, fingerprint: Mapping) -> tuple[dict[str, Calibration], str]:
    """``{noise_key: Calibration}`` for the machine of ``fingerprint`` (empty without a file or an entry for
    it), and a note on what an upgrade of an older file did."""
    document, note = _read(Path(path))
    entry = document["machines"].get(machine_key(dict(fingerprint)))
    if not entry:
        return {}, note
    return {key: Calibration(**fields) for key, fields in entry.get("noise", {}).items()}, note


def noise_for(path: Path, fingerprint: Mapping | None, *,
              required: bool = False) -> tuple[dict[str, stats.ProcessNoise], str]:
    """The noise in ``path`` for the machine of ``fingerprint``, and a line saying which was used.

    No file gives none (a ValueError where ``required``: the user named it). Without a fingerprint
    there is none either: noise of another machine must never apply.
    """
    if not path.exists():
        if required:
            raise ValueError(f"no calibration file {path}")
        return {}, ""
    if fingerprint is None:
        return {}, f"note: current results record no machine fingerprint; {path} not used"
    entries, upgrade = load(path, fingerprint)
    where = describe(dict(fingerprint))
    note = (f"calibrated noise: {len(entries)} benchmark(s) from {path} for {where}" if entries
            else f"calibrated noise: none in {path} for this machine ({where})")
    return {key: e.noise for key, e in entries.items()}, "; ".join(filter(None, [note, upgrade]))


def _read(path: Path) -> tuple[dict, str]:
    """The document, upgraded to this version, and a note of what the upgrade did ("" when nothing)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {CALIBRATION_MARKER: VERSION, "machines": {}}, ""
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable calibration file ({exc})") from None
    if not isinstance(document, dict) or CALIBRATION_MARKER not in document:
        raise ValueError(f"{path}: not a kerasbench calibration file")
    version = document[CALIBRATION_MARKER]
    if not isinstance(version, int) or version > VERSION or version < 1:
        raise ValueError(f"{path}: calibration file version {version!r}; this kerasbench reads versions 1 to "
                         f"{VERSION}: update kerasbench or run calibrate again")
    document.setdefault("machines", {})
    if version == VERSION:
        return document, ""
    kept = dropped = 0
    for machine in document["machines"].values():
        noise = {}
        for key, floor in machine.pop("floors", {}).items():
            upgraded = _upgrade_floor(key, floor)
            if upgraded is None:
                dropped += 1
            else:
                noise[key] = asdict(upgraded)
                kept += 1
        machine["noise"] = noise
    document[CALIBRATION_MARKER] = VERSION
    note = (f"{path} is a version-1 calibration file (noise floors): {kept} entr{'y' if kept == 1 else 'ies'} "
            "upgraded, variance of log medians from the coefficient of variation")
    if dropped:
        note += f"; {dropped} dropped (no coefficient of variation): run calibrate again for them"
    return document, note


def _upgrade_floor(key: str, floor: Mapping) -> Calibration | None:
    variation, processes = floor.get("variation"), floor.get("processes")
    if variation is None or not isinstance(processes, int) or processes < 2:
        return None
    noise = stats.ProcessNoise(math.log1p(float(variation) ** 2), processes - 1)
    detects, needed = resolution(noise, gate.MIN_PROCESSES)
    return Calibration(key=key, processes=processes, median_ms=float(floor.get("median_ms", math.nan)),
                       log_variance=noise.variance, df=noise.df, spread=float(floor.get("spread", math.nan)),
                       detects=detects, processes_for_target=needed,
                       upgraded="version 1: log variance = log(1 + cv^2) from its coefficient of variation")


def render(entries: Sequence[Calibration], fingerprint: dict, style: str = "md") -> str:
    n = entries[0].at_processes if entries else gate.MIN_PROCESSES
    headers = ("Benchmark", "Processes", "Geo. mean ms", "sd of log medians", "df", "Spread (max/min - 1)",
               f"Detects ≥ ({n} a side, 80%)", f"Processes for {TARGET_SLOWDOWN:.0%} ({TARGET_POWER:.0%})", "Modes")
    cells = [(e.key, str(e.processes), fmt_ms(e.median_ms), f"{math.sqrt(e.log_variance):.2%}", str(e.df),
              f"{e.spread:.1%}", fmt(e.detects, ".1%"),
              "over 50" if e.processes_for_target is None else str(e.processes_for_target), e.modes or "one")
             for e in entries]
    return "\n".join([f"Noise between processes on {describe(fingerprint)}:", "",
                      table(headers, cells, style), "",
                      "sd of log medians: the relative sd of a process median; compare pools this variance (with "
                      "its df) into each side's, so few processes still resolve small slowdowns. Detects ≥: the "
                      f"slowdown the gate flags with at least 80% power for one line among {LINES} (Holm's alpha / "
                      f"{LINES}), {n} processes a side, this calibration pooled in. Processes for "
                      f"{TARGET_SLOWDOWN:.0%}: a side, to flag that slowdown with {TARGET_POWER:.0%} power."]) + "\n"
