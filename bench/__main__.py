"""Command line: ``python -m bench run|report|compare`` (``python -m bench COMMAND -h`` for options).

Exit codes: 0 fine, 1 a regression (compare), 2 a usage error (bad option, no readable results).
Each subcommand is one ``add_*`` function that adds its parser and sets ``handler``; to add one,
write another and list it in SUBCOMMANDS.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# Only light modules here: `report` and `compare` must not import Keras or a backend.
from bench import compare as cmp
from bench import plots, report, results, runner, settings
from bench.backends import BACKENDS


class UsageError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


def fraction(text: str) -> float:
    """argparse type: '10%' or '0.1' -> 0.1. A bare number >= 1 is ambiguous and refused."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or percentage (e.g. 10% or 0.1)") from None
    if not raw.endswith("%") and value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is ambiguous: write {raw}% or {value / 100:g}")
    if value < 0 or value != value:  # NaN fails every comparison
        raise argparse.ArgumentTypeError(f"{text!r} must be zero or more")
    return value


def _load(paths: Sequence[str | Path], what: str) -> tuple[list[results.Result], list[str]]:
    try:
        runs, warnings = results.load(paths)
    except results.SchemaError as exc:
        raise UsageError(f"damaged result file: {exc}") from None
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    found = results.results_of(runs)
    if not found:
        where = " ".join(map(str, paths))
        raise UsageError(f"no readable results in {what + ' ' if what else ''}{where}")
    return found, warnings


# --------------------------------------------------------------------------------------------- run

def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="pytest bench/ under each backend, then the comparison table",
                       description="Run the benchmarks once per backend, each in its own process, going on past "
                                   "a failing backend; ends with the comparison table, written to the run folder. "
                                   "Benchmark options are the plugin's own (pytest bench/ --help); options after "
                                   "-- go to pytest as they are.")
    p.add_argument("--backends", type=backend_list, default=list(BACKENDS), metavar="LIST",
                   help=f"comma-separated, from {','.join(BACKENDS)} (default: all)")
    p.add_argument("--run-dir", default=None,
                   help="where this run's results, logs and report go (default: <results>/runs/<time>)")
    for flag, kwargs in settings.OPTIONS:
        if flag not in RUN_OWN:
            # The plugin's own definition: values are checked here, and only those given are forwarded.
            p.add_argument(flag, **{**kwargs, "default": argparse.SUPPRESS})
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="further pytest options, after --")
    p.set_defaults(handler=run_run)


RUN_OWN = ("--results-dir",)  # `run` puts results in its run folder (--run-dir)


def backend_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown backend(s) {', '.join(unknown) or repr(text)}; "
                                         f"choose from {','.join(BACKENDS)}")
    return names


def run_run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir).resolve() if args.run_dir else runner.default_run_dir(settings.results_dir())
    forwarded = []
    for flag, _ in settings.OPTIONS:
        dest = flag.removeprefix("--").replace("-", "_")
        if hasattr(args, dest):
            forwarded += [flag, str(getattr(args, dest))]
    extra = [a for a in args.pytest_args if a != "--"]
    outcomes = runner.run_backends(args.backends, [*forwarded, *extra], run_dir)
    print("\n" + runner.summary(outcomes))
    try:
        runs, warnings = results.load([run_dir])
    except results.SchemaError as exc:
        raise UsageError(f"damaged result file: {exc}") from None
    found = results.results_of(runs)
    if found:
        output = run_dir / "REPORT.md"
        print(report.write_report(found, warnings, "md", output), end="")
        print(f"wrote {output}", file=sys.stderr)
        for path in plots.plot(found, run_dir):
            print(f"wrote {path}", file=sys.stderr)
    return 0 if all(o.ok or o.status == "not installed" for o in outcomes) else 1


# ------------------------------------------------------------------------------------------ report

def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="tables and plots from result files",
                       description="Tabulate result files: one table per comparison group, one line per backend.")
    p.add_argument("paths", nargs="*", metavar="FILE_OR_FOLDER",
                   help="result files or folders of them (default: $KERASBENCH_RESULTS or results/)")
    p.add_argument("--format", choices=report.FORMATS, default="md", help="output format (default: md)")
    p.add_argument("--output", metavar="PATH", default=None,
                   help="also write the report to this file (e.g. results/REPORT.md); default: print only")
    p.add_argument("--plots", metavar="DIR", default=None, help="write PNG plots into DIR")
    p.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    paths = args.paths or [settings.results_dir()]
    found, warnings = _load(paths, "")
    output = args.output
    try:
        text = report.write_report(found, warnings, args.format, output)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    print(text, end="" if text.endswith("\n") else "\n")
    if output is not None:
        print(f"wrote {output}", file=sys.stderr)
    if args.plots:
        try:
            written = plots.plot(found, args.plots)
        except ImportError:
            raise UsageError("--plots needs matplotlib: pip install 'kerasbench[report]'") from None
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------------------- compare

def add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="baseline vs current; exit 1 on a regression",
        description="Compare two sets of results. A latency regression needs the median slower by more than "
                    "the threshold AND current Q1 above baseline Q3 (non-overlapping IQRs).")
    p.add_argument("baseline", metavar="BASELINE", help="result file or folder")
    p.add_argument("current", metavar="CURRENT", help="result file or folder")
    p.add_argument("--threshold", type=fraction, default=cmp.DEFAULT_THRESHOLD, metavar="PCT",
                   help="slowdown that counts, e.g. 10%% or 0.1 (default: 10%%)")
    p.add_argument("--accuracy-drop", type=fraction, default=cmp.DEFAULT_ACCURACY_DROP, metavar="DROP",
                   help="absolute val_accuracy drop that counts (default: 0.02)")
    p.add_argument("--format", choices=("md", "plain"), default="md", help="diff table format (default: md)")
    p.add_argument("--export-github-action", metavar="DIR", default=None,
                   help="write the current results as github-action-benchmark input: "
                        "DIR/customSmallerIsBetter.json and DIR/customBiggerIsBetter.json")
    p.add_argument("--export-bencher", metavar="PATH", default=None,
                   help="write the current results as Bencher Metric Format JSON")
    p.set_defaults(handler=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    baseline, _ = _load([args.baseline], "baseline")
    current, _ = _load([args.current], "current")
    changes, regressions = cmp.compare_results(baseline, current, args.threshold, args.accuracy_drop)
    print(cmp.render_comparison(changes, args.format, args.threshold, args.accuracy_drop), end="")
    try:
        if args.export_github_action:
            for path in cmp.write_github_action_benchmark(current, args.export_github_action):
                print(f"wrote {path}", file=sys.stderr)
        if args.export_bencher:
            print(f"wrote {cmp.write_bencher(current, args.export_bencher)}", file=sys.stderr)
    except OSError as exc:
        raise UsageError(f"cannot write export: {exc}") from None
    return 1 if regressions else 0


# -------------------------------------------------------------------------------------------- main

SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_run, add_report, add_compare]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description="kerasbench: report on and compare "
                                     "benchmark result files. Exit codes: 0 fine, 1 regression, 2 usage error.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
