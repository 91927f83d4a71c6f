"""``python -m bench calibrate``: this machine's noise between processes (A/A), for compare's test."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import calibrate, runner, settings
from bench import compare as cmp
from bench.commands.options import (
    UsageError,
    add_backends_option,
    add_benchmark_options,
    calibration_file,
    forwarded,
    load_results,
    wrote,
)


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate", help="this machine's noise between processes (A/A), for compare's test",
        description="Run the same code --repeat times per backend (interleaved), then store each benchmark's "
                    "variance of log process medians (with its degrees of freedom) for this machine "
                    f"in <results>/{calibrate.CALIBRATION_FILE}, keyed by the machine's fingerprint. compare pools "
                    "it into its test, so that few processes a side resolve small slowdowns. --from reads an A/A "
                    "run already made.")
    p.add_argument("--repeat", type=settings.positive_int, default=calibrate.DEFAULT_REPEAT, metavar="K",
                   help=f"processes per backend (default: {calibrate.DEFAULT_REPEAT})")
    p.add_argument("--gate-processes", type=settings.positive_int, default=cmp.MIN_PROCESSES, metavar="N",
                   help=f"processes a side that the 'detects' column is for (default: {cmp.MIN_PROCESSES})")
    add_backends_option(p)
    p.add_argument("--run-dir", default=None,
                   help="where the A/A run's results and logs go (default: <results>/runs/calibrate-<time>)")
    p.add_argument("--from", dest="source", default=None, metavar="DIR",
                   help="take the processes from this run folder instead of running")
    p.add_argument("--output", default=None, metavar="FILE",
                   help=f"calibration file to update (default: <results>/{calibrate.CALIBRATION_FILE})")
    p.add_argument("--format", choices=("md", "plain"), default="md", help="table format (default: md)")
    add_benchmark_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.source:
        source = Path(args.source)
    else:
        source = Path(args.run_dir) if args.run_dir else runner.default_run_dir(settings.results_dir(), "calibrate-")
        outcomes = runner.run_backends(args.backends, forwarded(args), source, repeat=args.repeat)
        print("\n" + runner.summary(outcomes))
    found, _ = load_results([source], "")
    try:
        fingerprint = calibrate.fingerprint_of(found)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    entries = calibrate.measure(found, args.gate_processes)
    if not entries:
        raise UsageError(f"no benchmark in {source} has two processes of one run: calibrate needs --repeat 2 or more")
    output = calibration_file(args.output)
    print(calibrate.render(entries, fingerprint, args.format), end="")
    try:
        calibrate.write(output, fingerprint, entries, str(source.resolve()))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot update {output}: {exc}") from None
    wrote(output)
    return 0
