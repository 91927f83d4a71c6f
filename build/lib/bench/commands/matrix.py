"""``python -m bench matrix --vary keras=3.10.0,3.12.0``: the benchmarks over a grid of package versions."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import compare as cmp
from bench import matrix, plots, results, runner, settings
from bench.commands.options import (
    UsageError,
    add_backends_option,
    add_benchmark_options,
    add_verdict_options,
    forwarded,
    load_runs,
    wrote,
)


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "matrix", help="the benchmarks over a grid of package versions (Keras, backends), interleaved",
        description="One cell per combination of the --vary versions (several --vary give their product), each "
                    "in its own cached environment (an overlay for pure-Python packages such as Keras, a full "
                    "uv environment for jax, tensorflow or torch). The cells run interleaved, round-robin, N "
                    "processes each per backend; the table shows train and predict medians, the ratio to the "
                    "reference cell with the gate's interval and verdict, the LSTM kernel observed and val_accuracy "
                    "where it ran, in MATRIX.md, matrix.json and one PNG per benchmark. A cell that cannot be "
                    "installed or run is marked with the reason, and the matrix goes on. Exit 1 when no cell ran.")
    p.add_argument("--vary", action="append", type=_vary, required=True, metavar="PACKAGE=V1,V2,...",
                   help="a package and its versions, e.g. keras=3.10.0,3.12.0,3.15.1; repeat for a product")
    p.add_argument("--reference", default=None, metavar="CELL",
                   help="the cell ratios are taken against, by name, e.g. \"keras=3.15.1\" (default: the first)")
    p.add_argument("--repeat", type=settings.positive_int, default=cmp.MIN_PROCESSES, metavar="N",
                   help=f"processes per cell and backend (default: {cmp.MIN_PROCESSES}, the fewest the gate acts on)")
    add_backends_option(p)
    p.add_argument("--run-dir", default=None,
                   help="where every cell's results, the logs, MATRIX.md, matrix.json and the PNGs go "
                        "(default: <results>/runs/matrix-<time>)")
    add_verdict_options(p)
    add_benchmark_options(p)
    p.set_defaults(handler=run)


def _vary(text: str) -> tuple[str, list[str]]:
    try:
        return matrix.parse_vary(text)
    except matrix.MatrixError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    try:
        grid = matrix.cells(args.vary)
        reference = matrix.reference_cell(grid, args.reference)
    except matrix.MatrixError as exc:
        raise UsageError(str(exc)) from None
    run_dir = Path(args.run_dir) if args.run_dir else runner.default_run_dir(settings.results_dir(), "matrix-")
    done = matrix.run_matrix(grid, reference=reference, backends=args.backends, pytest_args=forwarded(args),
                             repeat=args.repeat, run_dir=run_dir, root=settings.CHECKOUT)
    found = {}
    for cell in grid:
        if done.folder(cell).exists():
            runs, _ = load_runs([done.folder(cell)], show_warnings=False)
            found[cell.name] = results.results_of(runs)
    rows = matrix.build_rows(grid, reference, args.backends, found, done.problems, done.outcomes,
                             threshold=args.threshold, confidence=args.confidence, min_processes=args.min_processes)
    everything = [r for side in found.values() for r in side]
    md, js = matrix.write(done, rows, everything, repeat=args.repeat, threshold=args.threshold,
                          confidence=args.confidence)
    print("\n" + md.read_text(encoding="utf-8"), end="")
    for path in (md, js):
        wrote(path)
    for kind in ("train", "predict"):
        try:
            path = plots.matrix(rows, [c.name for c in grid], kind, done.run_dir / f"matrix_{kind}_step.png")
        except ImportError:
            print("no plots: matplotlib is not installed (the report extra)")
            break
        if path is not None:
            wrote(path)
    return 0 if any(r.processes for r in rows) else 1
