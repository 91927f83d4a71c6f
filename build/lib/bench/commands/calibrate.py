"""``python -m bench calibrate``: this machine's noise between processes (A/A), for compare's noise floor."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import calibrate, runner, settings
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
        "calibrate", help="this machine's noise between processes (A/A), for compare's noise floor",
        description="Run the same code --repeat times per backend (interleaved), then store each benchmark's "
                    "spread between processes for this machine (the largest ratio of two process medians, minus 1) "
                    f"in <results>/{calibrate.CALIBRATION_FILE}, keyed by the machine's fingerprint. compare then "
                    "gates on the larger of --threshold and that floor. --from reads an A/A run already made.")
    p.add_argument("--repeat", type=settings.positive_int, default=calibrate.DEFAULT_REPEAT, metavar="K",
                   help=f"processes per backend (default: {calibrate.DEFAULT_REPEAT}: two A/A sides of 3)")
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
    floors = calibrate.measure(found)
    if not floors:
        raise UsageError(f"no benchmark in {source} has two processes of one run: calibrate needs --repeat 2 or more")
    output = calibration_file(args.output)
    print(calibrate.render(floors, fingerprint, args.format), end="")
    try:
        calibrate.write(output, fingerprint, floors, str(source.resolve()))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot update {output}: {exc}") from None
    wrote(output)
    return 0
