"""Command line: ``python -m bench run|report|compare|parity|ab|calibrate|history`` (``-h`` for options).

Exit codes: 0 fine, 1 a regression (compare), 2 a usage error (bad option, no readable results).
Each subcommand is one ``add_*`` function that adds its parser and sets ``handler``; to add one,
write another and list it in SUBCOMMANDS.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# Only light modules here: `report` and `compare` must not import Keras or a backend.
from bench import ab, calibrate, history, machine, parity, plots, report, results, runner, settings
from bench import compare as cmp
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
    _add_backends_option(p)
    p.add_argument("--run-dir", default=None,
                   help="where this run's results, logs and report go (default: <results>/runs/<time>)")
    p.add_argument("--repeat", type=settings.positive_int, default=1, metavar="N",
                   help="processes per backend, interleaved (tensorflow, jax, torch, tensorflow, ...); the report "
                        "shows the median of their medians with a 95%% interval over processes (default: 1)")
    _add_benchmark_options(p)
    p.set_defaults(handler=run_run)


def _add_benchmark_options(p: argparse.ArgumentParser) -> None:
    """The plugin's own options (values checked here, only those given are forwarded), then pytest's after --."""
    for flag, kwargs in settings.OPTIONS:
        if flag not in RUN_OWN:
            p.add_argument(flag, **{**kwargs, "default": argparse.SUPPRESS})
    p.set_defaults(pytest_args=[])  # what follows "--" on the command line (see main)
    p.epilog = "Options after -- go to pytest as they are, e.g. -- -k train_step."


def _forwarded(args: argparse.Namespace) -> list[str]:
    """The benchmark options given, as flags for the pytest processes, then the pytest options after --."""
    forwarded = []
    for flag, _ in settings.OPTIONS:
        dest = flag.removeprefix("--").replace("-", "_")
        if hasattr(args, dest):
            forwarded += [flag, str(getattr(args, dest))]
    return [*forwarded, *args.pytest_args]


RUN_OWN = ("--results-dir",)  # `run` puts results in its run folder (--run-dir)


def _add_backends_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backends", type=backend_list, default=list(BACKENDS), metavar="LIST",
                   help=f"comma-separated, from {','.join(BACKENDS)} (default: all)")


def backend_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown backend(s) {', '.join(unknown) or repr(text)}; "
                                         f"choose from {','.join(BACKENDS)}")
    return names


def run_run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir).resolve() if args.run_dir else runner.default_run_dir(settings.results_dir())
    outcomes = runner.run_backends(args.backends, _forwarded(args), run_dir, repeat=args.repeat)
    print("\n" + runner.summary(outcomes))
    try:
        runs, warnings = results.load([run_dir])
    except results.SchemaError as exc:
        raise UsageError(f"damaged result file: {exc}") from None
    found = results.results_of(runs)
    if found:
        output, model = run_dir / "REPORT.md", report.build(found, warnings)
        report.write(model, "md", output)
        print(report.terminal_table(model), end="")
        print(f"wrote {output}", file=sys.stderr)
        for path in plots.plot(model, run_dir):
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
    p.add_argument("--margin", type=parity.margin_points, default=parity.DEFAULT_MARGIN, metavar="PTS",
                   help="parity section: val_accuracy difference that still counts as equivalent (default: 1pt)")
    p.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    paths = args.paths or [settings.results_dir()]
    found, warnings = _load(paths, "")
    output, model = args.output, report.build(found, warnings, args.margin)
    try:
        text = report.write(model, args.format, output)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    print(text, end="" if text.endswith("\n") else "\n")
    if output is not None:
        print(f"wrote {output}", file=sys.stderr)
    if args.plots:
        try:
            written = plots.plot(model, args.plots)
        except ImportError:
            raise UsageError("--plots needs matplotlib: pip install 'kerasbench[report]'") from None
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------------------- compare

def add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="baseline vs current; exit 1 on a regression",
        description="Compare two sets of results (each side: the processes of its newest run). A latency "
                    "regression needs the median of process medians slower by more than the threshold (or this "
                    "machine's calibrated noise floor, when larger) AND the confidence interval of the ratio "
                    "current/baseline above 1, from a hierarchical bootstrap over processes and then rounds; "
                    f"gating needs {cmp.MIN_PROCESSES} processes a side (python -m bench run --repeat "
                    f"{cmp.MIN_PROCESSES}). Results from different machines are not gated.")
    p.add_argument("baseline", metavar="BASELINE", help="result file or folder")
    p.add_argument("current", metavar="CURRENT", help="result file or folder")
    _add_gate_options(p)
    p.set_defaults(handler=run_compare)


def _add_gate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threshold", type=fraction, default=cmp.DEFAULT_THRESHOLD, metavar="PCT",
                   help="slowdown that counts, e.g. 10%% or 0.1 (default: 10%%)")
    p.add_argument("--confidence", type=confidence_level, default=cmp.DEFAULT_CONFIDENCE, metavar="LEVEL",
                   help="of the interval of the ratio of medians, e.g. 95%% or 0.99 (default: 95%%)")
    p.add_argument("--min-processes", type=settings.positive_int, default=cmp.MIN_PROCESSES, metavar="N",
                   help=f"fewest processes a side to gate on (default: {cmp.MIN_PROCESSES})")
    p.add_argument("--noise", metavar="FILE", default=None,
                   help=f"noise floors from `python -m bench calibrate` (default: <results>/"
                        f"{calibrate.CALIBRATION_FILE} when it exists; 'none' to ignore it)")
    p.add_argument("--accuracy-drop", type=fraction, default=cmp.DEFAULT_ACCURACY_DROP, metavar="DROP",
                   help="absolute val_accuracy drop that counts (default: 0.02)")
    p.add_argument("--match", choices=("group", "name"), default="group",
                   help="pair benchmarks by name and comparison group (default), or by name alone: an A/B of "
                        "settings, e.g. --maxlen 200 against 220 (the line then notes what differs)")
    p.add_argument("--format", choices=("md", "plain"), default="md", help="diff table format (default: md)")
    p.add_argument("--export-github-action", metavar="DIR", default=None,
                   help="write the current results as github-action-benchmark input: "
                        "DIR/customSmallerIsBetter.json and DIR/customBiggerIsBetter.json")
    p.add_argument("--export-bencher", metavar="PATH", default=None,
                   help="write the current results as Bencher Metric Format JSON")


def confidence_level(text: str) -> float:
    """argparse type: a confidence strictly between 0 and 1, written as 95% or 0.95."""
    value = fraction(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a confidence level between 0 and 100%")
    return value


def run_compare(args: argparse.Namespace) -> int:
    baseline, _ = _load([args.baseline], "baseline")
    current, _ = _load([args.current], "current")
    text, regressions = _gate(args, baseline, current)
    print(text, end="")
    return 1 if regressions else 0


def _gate(args: argparse.Namespace, baseline: list[results.Result],
          current: list[results.Result]) -> tuple[str, list[cmp.Change]]:
    """compare's verdict with the gate options of ``args``; writes the exports it asks for."""
    floors = _noise_floors(args.noise, current)
    paired, notes = cmp.pair_by_name(baseline, current) if args.match == "name" else (current, {})
    changes, regressions = cmp.compare_results(baseline, paired, args.threshold, args.accuracy_drop,
                                               confidence=args.confidence, noise=floors,
                                               min_processes=args.min_processes)
    for change in changes:
        change.note = "; ".join(filter(None, [notes.get(change.name), change.note]))
    text = cmp.render_comparison(changes, args.format, args.threshold, args.accuracy_drop, args.confidence,
                                 args.min_processes)
    try:
        if args.export_github_action:
            for path in cmp.write_github_action_benchmark(current, args.export_github_action):
                print(f"wrote {path}", file=sys.stderr)
        if args.export_bencher:
            print(f"wrote {cmp.write_bencher(current, args.export_bencher)}", file=sys.stderr)
    except OSError as exc:
        raise UsageError(f"cannot write export: {exc}") from None
    return text, regressions


def _fingerprint(found: list[results.Result]) -> dict | None:
    """The machine fingerprint the results record (the first that has one), or None."""
    return next((r.run.fingerprint for r in found if r.run.fingerprint), None)


def _noise_floors(option: str | None, current: list[results.Result]) -> dict[str, float]:
    if option == "none":
        return {}
    path = Path(option) if option else settings.results_dir() / calibrate.CALIBRATION_FILE
    if not path.exists():
        if option:
            raise UsageError(f"no calibration file {path}")
        return {}
    fingerprint = _fingerprint(current)
    if fingerprint is None:
        print(f"note: current results record no machine fingerprint; {path} not used", file=sys.stderr)
        return {}
    try:
        floors = calibrate.load_floors(path, fingerprint)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"noise floors: {len(floors)} benchmark(s) from {path} for {machine.describe(fingerprint)}"
          if floors else f"noise floors: none in {path} for this machine ({machine.describe(fingerprint)})",
          file=sys.stderr)
    return floors


# ------------------------------------------------------------------------------------------ parity

def add_parity(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "parity", help="does accuracy hold across backends? (several seeds per backend)",
        description="Per backend the mean final val_accuracy over seeds with its 95%% interval, per pair of backends "
                    "the difference and a verdict from an equivalence test (TOST against --margin); the same for "
                    "epochs and seconds to the target accuracy. Results of every file are pooled per seed.")
    p.add_argument("paths", nargs="*", metavar="FILE_OR_FOLDER",
                   help="result files or folders of them (default: $KERASBENCH_RESULTS or results/)")
    p.add_argument("--margin", type=parity.margin_points, default=parity.DEFAULT_MARGIN, metavar="PTS",
                   help="val_accuracy difference that still counts as equivalent, e.g. 1pt or 0.01 (default: 1pt)")
    p.add_argument("--time-margin", type=fraction, default=parity.DEFAULT_TIME_MARGIN, metavar="PCT",
                   help="epochs and seconds to the target: ratio that still counts as equivalent (default: 10%%)")
    p.add_argument("--format", choices=("md", "json"), default="md", help="output format (default: md)")
    p.set_defaults(handler=run_parity)


def run_parity(args: argparse.Namespace) -> int:
    found, _ = _load(args.paths or [settings.results_dir()], "")
    text = parity.render(found, args.margin, args.time_margin, args.format)
    print(text, end="" if text.endswith("\n") else "\n")
    return 0


# ---------------------------------------------------------------------------------------------- ab

def add_ab(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ab", help="two commits on this machine, interleaved, then compare; exit 1 on a regression",
        description="Check out BASE and HEAD as git worktrees, run the benchmarks of each with its own code, "
                    "interleaved (base, head, then head, base, ... per backend: the sides take turns going first), "
                    "then compare them with the gate of "
                    "`python -m bench compare`. Both sides use this interpreter's packages. Exit 1 on a "
                    "regression or when a benchmark process failed.")
    p.add_argument("base", metavar="BASE_REF", help="the reference commit (branch, tag, hash)")
    p.add_argument("head", metavar="HEAD_REF", help="the commit under test")
    p.add_argument("--repo", default=str(settings.CHECKOUT), metavar="DIR",
                   help="the git checkout the refs are in (default: this one)")
    p.add_argument("--repeat", type=settings.positive_int, default=cmp.MIN_PROCESSES, metavar="N",
                   help=f"processes per side per backend (default: {cmp.MIN_PROCESSES}, the fewest the gate acts on)")
    _add_backends_option(p)
    p.add_argument("--run-dir", default=None,
                   help="where both sides' results, logs and COMPARE.md go (default: <results>/runs/ab-<time>)")
    p.add_argument("--base-args", type=shlex.split, default=[], metavar="OPTIONS",
                   help="benchmark options for the base side only, e.g. \"--maxlen 200\"")
    p.add_argument("--head-args", type=shlex.split, default=[], metavar="OPTIONS",
                   help="benchmark options for the head side only, e.g. \"--maxlen 220\" (then --match name)")
    _add_gate_options(p)
    _add_benchmark_options(p)
    p.set_defaults(handler=run_ab)


def run_ab(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir) if args.run_dir else runner.default_run_dir(settings.results_dir(), "ab-")
    try:
        done = ab.run_ab(args.base, args.head, repo=Path(args.repo), backends=args.backends,
                         pytest_args=_forwarded(args), repeat=args.repeat, run_dir=run_dir,
                         base_args=args.base_args, head_args=args.head_args)
    except ab.RefError as exc:
        raise UsageError(str(exc)) from None
    print("\n" + runner.summary(done.outcomes))
    failed = [o for o in done.outcomes if not (o.ok or o.status == "not installed")]
    base = ab.as_one_run(_load([done.side("base")], "base")[0], done.run_ids["base"])
    head = ab.as_one_run(_load([done.side("head")], "head")[0], done.run_ids["head"])
    text, regressions = _gate(args, base, head)
    short = lambda text: re.sub(r"\b([0-9a-f]{12})[0-9a-f]{28}\b", r"\1", text)
    header = f"# ab: base {short(done.base)} ({args.base}) vs head {short(done.head)} ({args.head})\n\n"
    if args.base_args or args.head_args:
        sides = [f"{name} {shlex.join(extra) or '-'}" for name, extra in (("base", args.base_args),
                                                                          ("head", args.head_args))]
        header += f"Side options: {', '.join(sides)}.\n\n"
    fingerprint = _fingerprint(head) or {}
    header += f"Measured on {machine.describe(fingerprint)}, interleaved, {args.repeat} process(es) a side.\n\n"
    results.write_text_atomic(done.run_dir / "COMPARE.md", header + text)
    print(header + text, end="")
    print(f"wrote {done.run_dir / 'COMPARE.md'}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} benchmark process(es) failed: " + ", ".join(o.label for o in failed), file=sys.stderr)
    return 1 if regressions or failed else 0


# ---------------------------------------------------------------------------------------- calibrate

def add_calibrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate", help="this machine's noise between processes (A/A), for compare's noise floor",
        description="Run the same code --repeat times per backend (interleaved), then store each benchmark's "
                    "spread between processes for this machine (the largest ratio of two process medians, minus 1) "
                    f"in <results>/{calibrate.CALIBRATION_FILE}, keyed by the machine's fingerprint. compare then "
                    "gates on the larger of --threshold and that floor. --from reads an A/A run already made.")
    p.add_argument("--repeat", type=settings.positive_int, default=calibrate.DEFAULT_REPEAT, metavar="K",
                   help=f"processes per backend (default: {calibrate.DEFAULT_REPEAT}: two A/A sides of 3)")
    _add_backends_option(p)
    p.add_argument("--run-dir", default=None,
                   help="where the A/A run's results and logs go (default: <results>/runs/calibrate-<time>)")
    p.add_argument("--from", dest="source", default=None, metavar="DIR",
                   help="take the processes from this run folder instead of running")
    p.add_argument("--output", default=None, metavar="FILE",
                   help=f"calibration file to update (default: <results>/{calibrate.CALIBRATION_FILE})")
    p.add_argument("--format", choices=("md", "plain"), default="md", help="table format (default: md)")
    _add_benchmark_options(p)
    p.set_defaults(handler=run_calibrate)


def run_calibrate(args: argparse.Namespace) -> int:
    if args.source:
        source = Path(args.source)
    else:
        source = Path(args.run_dir) if args.run_dir else runner.default_run_dir(settings.results_dir(), "calibrate-")
        outcomes = runner.run_backends(args.backends, _forwarded(args), source, repeat=args.repeat)
        print("\n" + runner.summary(outcomes))
    found, _ = _load([source], "")
    try:
        fingerprint = calibrate.fingerprint_of(found)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    floors = calibrate.measure(found)
    if not floors:
        raise UsageError(f"no benchmark in {source} has two processes of one run: calibrate needs --repeat 2 or more")
    output = Path(args.output) if args.output else settings.results_dir() / calibrate.CALIBRATION_FILE
    print(calibrate.render(floors, fingerprint, args.format), end="")
    try:
        calibrate.write(output, fingerprint, floors, str(source.resolve()))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot update {output}: {exc}") from None
    print(f"wrote {output}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------ history

def add_history(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "history", help="each benchmark's median over time, with commits and machines; step changes marked",
        description="Put every benchmark's median (one point per run; several processes: the median of their "
                    "medians) in time order with the commit, date and machine it was measured on. A step is a "
                    "change past --threshold, against the level before it, sustained for --sustain points.")
    p.add_argument("paths", nargs="+", metavar="FILE_OR_FOLDER", help="result files or folders of them")
    p.add_argument("-k", dest="name", default="", metavar="TEXT", help="only benchmarks whose name contains TEXT")
    p.add_argument("--threshold", type=fraction, default=history.DEFAULT_THRESHOLD, metavar="PCT",
                   help="change that makes a step (default: 10%%)")
    p.add_argument("--sustain", type=settings.positive_int, default=history.DEFAULT_SUSTAIN, metavar="N",
                   help=f"points in a row past the threshold that make a step (default: {history.DEFAULT_SUSTAIN})")
    p.add_argument("--format", choices=("md", "plain", "csv"), default="md", help="output format (default: md)")
    p.add_argument("--plot", metavar="PNG", default=None, help="also draw the medians over time into this PNG")
    p.set_defaults(handler=run_history)


def run_history(args: argparse.Namespace) -> int:
    try:
        runs, warnings = results.load(args.paths)
    except results.SchemaError as exc:
        raise UsageError(f"damaged result file: {exc}") from None
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    series = history.collect(runs, args.name)
    if not series:
        raise UsageError("no benchmark with statistics" + (f" matching {args.name!r}" if args.name else "")
                         + " in " + " ".join(args.paths))
    for points in series.values():
        history.mark_steps(points, args.threshold, args.sustain)
    text = history.render_csv(series) if args.format == "csv" else history.render(series, args.format)
    print(text, end="")
    if args.plot:
        try:
            print(f"wrote {plots.history(series, args.plot)}", file=sys.stderr)
        except ImportError:
            raise UsageError("--plot needs matplotlib: pip install 'kerasbench[report]'") from None
    return 0


# -------------------------------------------------------------------------------------------- main

SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_run, add_report, add_compare, add_parity,
                                                                   add_ab, add_calibrate, add_history]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description="kerasbench: report on and compare "
                                     "benchmark result files. Exit codes: 0 fine, 1 regression, 2 usage error.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Everything after the first "--" goes to pytest as it is (run, ab, calibrate): split here, since
    # argparse's REMAINDER would also swallow the options that follow a positional (ab BASE HEAD ...).
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if "--" in argv:
        if not hasattr(args, "pytest_args"):
            parser.error(f"{args.command} takes no pytest options after --")
        args.pytest_args = passthrough
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
