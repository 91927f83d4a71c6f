"""``python -m bench matrix``: the benchmarks over a grid of package versions, interleaved, in one table.

``--vary keras=3.10.0,3.12.0`` (several ``--vary`` give their product) makes one cell per
combination; each cell is an environment (``bench.environments``: an overlay for a Keras release, a
full environment for a backend release) in which the benchmarks run, N processes per backend. The
cells run interleaved, round-robin over the cells per backend and repeat (``runner.run_interleaved``,
in ABBA order), so that a drift of the machine spreads over every cell instead of landing on the
last. The table has one row per cell and backend: train and predict medians (median of process
medians, 95% interval over processes), each as a ratio to the reference cell with the interval
and verdict of ``compare``'s gate, the LSTM kernel observed, and val_accuracy where it ran.

A cell that cannot be installed (a release that does not exist, the resolver's refusal) or that
the harness cannot run (every process failed: the log's telling line is kept) is marked with the
reason, and the matrix goes on with the other cells.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import compare, environments, runner, stats
from bench.fingerprint import describe
from bench.results import Result, json_text, write_text_atomic
from bench.selection import aggregate, measured_on
from bench.tables import MISSING, fmt, fmt_ms, table

MATRIX_FILE = "MATRIX.md"
JSON_FILE = "matrix.json"
KINDS = ("train_step", "predict_step")  # the step benchmarks a row shows, each with its ratio to the reference
REPORT_KEY = "kerasbench_report"  # results.REPORT_MARKER: `report` and `compare` skip this JSON silently


class MatrixError(ValueError):
    """A --vary or --reference that does not describe a grid of cells."""


@dataclass(frozen=True)
class Cell:
    """One combination of versions: ``keras==3.12.0`` (and, with several --vary, ``jax==0.10.2``...)."""

    pins: tuple[str, ...]

    @property
    def name(self) -> str:
        """'keras=3.12.0 jax=0.10.2': how tables, logs and --reference name the cell."""
        return " ".join(pin.replace("==", "=") for pin in self.pins)

    @property
    def slug(self) -> str:
        """The cell's folder name: 'keras-3.12.0_jax-0.10.2'."""
        return "_".join(re.sub(r"[^A-Za-z0-9.+-]+", "-", pin.replace("==", "-")) for pin in self.pins)


def parse_vary(text: str) -> tuple[str, list[str]]:
    """``"keras=3.10.0,3.12.0"`` -> ``("keras", ["3.10.0", "3.12.0"])``."""
    name, sep, versions = text.partition("=")
    values = [v.strip() for v in versions.split(",") if v.strip()]
    if not sep or not name.strip() or not values or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name.strip()):
        raise MatrixError(f"{text!r} is not PACKAGE=VERSION,VERSION,... (e.g. keras=3.10.0,3.12.0)")
    if len(set(values)) != len(values):
        raise MatrixError(f"{text!r} lists a version twice")
    return name.strip(), values


def cells(varies: Sequence[tuple[str, list[str]]]) -> list[Cell]:
    """The product of the varied versions, in the order given (the first --vary changes slowest)."""
    names = [name for name, _ in varies]
    if len(set(names)) != len(names):
        raise MatrixError(f"a package is varied twice: {', '.join(names)}")
    return [Cell(tuple(f"{name}=={version}" for name, version in zip(names, combo, strict=True)))
            for combo in itertools.product(*(versions for _, versions in varies))]


def reference_cell(grid: Sequence[Cell], text: str | None) -> Cell:
    """The cell ``--reference`` names (its name, e.g. "keras=3.15.1"); the first cell when not given."""
    if not text:
        return grid[0]
    wanted = " ".join(text.replace("==", "=").split())
    for cell in grid:
        if cell.name == wanted:
            return cell
    raise MatrixError(f"--reference {text!r} is not a cell; the cells are: {', '.join(c.name for c in grid)}")


# ------------------------------------------------------------------------------------------ running

@dataclass
class MatrixRun:
    """What ran: each cell's environment or why it has none, the processes, and each cell's results folder."""

    cells: list[Cell]
    reference: Cell
    run_dir: Path
    environments: dict[str, environments.Environment] = field(default_factory=dict)  # by cell name
    problems: dict[str, str] = field(default_factory=dict)  # by cell name: why it could not be installed
    outcomes: list[runner.Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def folder(self, cell: Cell) -> Path:
        return self.run_dir / cell.slug


def run_matrix(grid: Sequence[Cell], *, reference: Cell, backends: list[str], pytest_args: list[str], repeat: int,
               run_dir: Path, root: Path, prepare: Callable[..., environments.Environment] = environments.prepare
               ) -> MatrixRun:
    """Prepare each cell's environment (a failure marks the cell), then run the cells interleaved."""
    start = time.perf_counter()  # wall time of whole child processes: each times its own steps, with syncs
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    done = MatrixRun(list(grid), reference, run_dir)
    for cell in grid:
        try:
            request = environments.Request.parse(cell.pins, None, backends)
            done.environments[cell.name] = prepare(request, root=root)
            print(f"matrix: {cell.name}: {done.environments[cell.name].label}", flush=True)
        except environments.EnvironmentFailed as exc:
            done.problems[cell.name] = f"cannot be installed: {exc}"
            print(f"matrix: {cell.name}: {done.problems[cell.name]}", flush=True)
    sides = [runner.Side(cell.name, root, done.folder(cell), runner.new_run_id(),
                         environment=done.environments[cell.name])
             for cell in grid if cell.name in done.environments]
    if sides:
        print(f"matrix: {len(sides)} cell(s) x {len(backends)} backend(s) x {repeat} process(es), interleaved",
              flush=True)
        done.outcomes = runner.run_interleaved(backends, pytest_args, sides, repeat, run_dir / "logs")
    done.seconds = time.perf_counter() - start
    return done


# -------------------------------------------------------------------------------------------- table

@dataclass
class Row:
    """One cell under one backend. Every field goes to matrix.json as it is."""

    cell: str
    backend: str
    status: str  # "ok", or why nothing (or not everything) was measured
    reference: bool = False
    keras: str | None = None  # as the processes recorded them
    backend_version: str | None = None
    processes: int = 0
    train_ms: float | None = None
    train_ci_ms: tuple[float, float] | None = None
    train_ratio: float | None = None  # cell / reference, median of process medians
    train_ratio_ci: tuple[float, float] | None = None  # the gate's interval (stats.RATIO_TEST_METHOD)
    train_verdict: str | None = None
    predict_ms: float | None = None
    predict_ci_ms: tuple[float, float] | None = None
    predict_ratio: float | None = None
    predict_ratio_ci: tuple[float, float] | None = None
    predict_verdict: str | None = None
    kernel: str | None = None  # the LSTM kernel the spy saw, with the family the program showed
    val_accuracy: float | None = None  # mean final val_accuracy where the accuracy benchmark ran


def build_rows(grid: Sequence[Cell], reference: Cell, backends: Sequence[str], found: Mapping[str, Sequence[Result]],
               problems: Mapping[str, str], outcomes: Sequence[runner.Outcome], *,
               threshold: float = compare.DEFAULT_THRESHOLD, confidence: float = compare.DEFAULT_CONFIDENCE,
               min_processes: int = compare.MIN_PROCESSES) -> list[Row]:
    """The table: each cell under each backend against the reference cell (``found``: results by cell name)."""
    rows = []
    for cell in grid:
        for backend in backends:
            mine = [r for r in found.get(cell.name, []) if r.backend == backend]
            theirs = [r for r in found.get(reference.name, []) if r.backend == backend]
            row = Row(cell.name, backend, _status(cell, backend, mine, problems, outcomes),
                      reference=cell == reference)
            if mine:
                _fill(row, mine, theirs, threshold, confidence, min_processes)
            rows.append(row)
    return rows


def _status(cell: Cell, backend: str, mine: Sequence[Result], problems: Mapping[str, str],
            outcomes: Sequence[runner.Outcome]) -> str:
    if cell.name in problems:
        return problems[cell.name]
    ran = [o for o in outcomes if o.side == cell.name and o.backend == backend]
    failed = [o for o in ran if not o.ok]
    if not ran:
        return "not run"
    if all(o.status == "not installed" for o in ran):
        return "not installed in this cell's environment"
    if not mine:
        return f"the harness cannot run it: {failed[0].status}" if failed else "no results"
    if failed:
        return f"{len(failed)} of {len(ran)} processes failed: {failed[0].status}"
    return "ok"


def _fill(row: Row, mine: Sequence[Result], theirs: Sequence[Result], threshold: float, confidence: float,
          min_processes: int) -> None:
    describing = next((r for r in mine if r.kind in KINDS), mine[0])
    row.keras, row.backend_version = describing.context.keras, str(describing.context.backend_version)
    kernel = describing.context.kernel
    row.kernel = kernel.name if kernel.family in ("unknown", "") else f"{kernel.name} [{kernel.family}]"
    changes = {}
    if theirs and not row.reference:
        found, _ = compare.compare_results(theirs, mine, threshold, confidence=confidence, min_processes=min_processes)
        changes = {ch.name.split("[")[0].removeprefix("test_"): ch for ch in found if ch.metric == "latency"}
    for kind in KINDS:
        members = [r for r in mine if r.kind == kind]
        summary = aggregate(members)
        if summary is None:
            continue
        prefix = kind.split("_")[0]
        row.processes = max(row.processes, summary.processes)
        setattr(row, f"{prefix}_ms", summary.median_ms)
        setattr(row, f"{prefix}_ci_ms", None if summary.low_ms is None else (summary.low_ms, summary.high_ms))
        if row.reference:
            setattr(row, f"{prefix}_ratio", 1.0)
            setattr(row, f"{prefix}_verdict", "reference")
            continue
        change = changes.get(kind)
        if change is None:
            setattr(row, f"{prefix}_verdict", "no reference")
            continue
        setattr(row, f"{prefix}_verdict", change.verdict)
        if change.test is not None:
            setattr(row, f"{prefix}_ratio", change.test.ratio)
            setattr(row, f"{prefix}_ratio_ci", (change.test.low, change.test.high))
        elif change.change is not None:
            setattr(row, f"{prefix}_ratio", 1 + change.change / 100)
    finals = [r.accuracy.final_val_accuracy for r in mine if r.accuracy and r.accuracy.final_val_accuracy is not None]
    row.val_accuracy = sum(finals) / len(finals) if finals else None


# ------------------------------------------------------------------------------------------ outputs

HEADERS = ("Cell", "Backend", "Keras", "Backend version", "Processes", "Train ms [95% CI]", "Train vs ref [CI]",
           "Train verdict", "Predict ms [95% CI]", "Predict vs ref [CI]", "Predict verdict", "LSTM kernel",
           "val_accuracy", "Status")


def _ms(value: float | None, interval: tuple[float, float] | None) -> str:
    if value is None:
        return MISSING
    return f"{fmt_ms(value)}" + (f" [{fmt_ms(interval[0])}-{fmt_ms(interval[1])}]" if interval else "")


def _ratio(value: float | None, interval: tuple[float, float] | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def render(done: MatrixRun, rows: Sequence[Row], results: Sequence[Result], *, repeat: int,
           threshold: float = compare.DEFAULT_THRESHOLD, confidence: float = compare.DEFAULT_CONFIDENCE) -> str:
    """MATRIX.md: what was varied, the reference, the machine, the table, and each cell's environment."""
    cells_text = ", ".join(c.name for c in done.cells)
    out = [f"# matrix: {cells_text}", "",
           f"Reference cell: {done.reference.name}. {repeat} process(es) per cell and backend, interleaved "
           f"round-robin over the cells. Measured on {describe(measured_on(results) or {})}. "
           f"Ratios are cell / reference (median of process medians) with the {confidence:.0%} interval of "
           f"compare's gate ({stats.RATIO_TEST_METHOD}); verdicts use its rule with a "
           f"{threshold:.0%} threshold.", "",
           table(HEADERS, [(r.cell + (" (ref)" if r.reference else ""), r.backend, r.keras or MISSING,
                            r.backend_version or MISSING, str(r.processes) if r.processes else MISSING,
                            _ms(r.train_ms, r.train_ci_ms), _ratio(r.train_ratio, r.train_ratio_ci),
                            r.train_verdict or MISSING, _ms(r.predict_ms, r.predict_ci_ms),
                            _ratio(r.predict_ratio, r.predict_ratio_ci), r.predict_verdict or MISSING,
                            r.kernel or MISSING, fmt(r.val_accuracy, ".3f"), r.status) for r in rows]), ""]
    out += ["## Environments", ""]
    for cell in done.cells:
        env = done.environments.get(cell.name)
        out.append(f"- {cell.name}: {env.label if env else done.problems.get(cell.name, 'not prepared')}")
    out += ["", f"Total time: {done.seconds:.0f} s.", ""]
    return "\n".join(out)


def document(done: MatrixRun, rows: Sequence[Row]) -> dict:
    """matrix.json: the cells, their environments and the rows (marked so that result readers skip it)."""
    return {REPORT_KEY: "matrix", "reference": done.reference.name, "seconds": round(done.seconds, 3),
            "cells": [{"name": c.name, "pins": list(c.pins), "folder": str(done.folder(c)),
                       "environment": done.environments[c.name].label if c.name in done.environments else None,
                       "problem": done.problems.get(c.name)} for c in done.cells],
            "rows": [dataclasses.asdict(r) for r in rows]}


def write(done: MatrixRun, rows: Sequence[Row], results: Sequence[Result], *, repeat: int, threshold: float,
          confidence: float) -> tuple[Path, Path]:
    """MATRIX.md and matrix.json in the run folder; returns their paths."""
    md, js = done.run_dir / MATRIX_FILE, done.run_dir / JSON_FILE
    write_text_atomic(md, render(done, rows, results, repeat=repeat, threshold=threshold, confidence=confidence))
    write_text_atomic(js, json_text(document(done, rows)))
    return md, js
