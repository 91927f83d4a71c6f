"""Command line: ``python -m bench COMMAND`` (``-h`` for options), one of: run, explain, report, compare, parity,
ab, matrix, bisect, calibrate, history, gpu-check, cuda-libs.

Exit codes: 0 fine, 1 a regression (compare, ab), a failed benchmark process, or nothing found (matrix:
no cell ran; bisect: the ends do not differ), 2 a usage error (bad option, no readable results, no GPU
for gpu-check, an environment that cannot be built), 3 not gated (compare, ab: a line both sides share
could not be gated, or the sides share no line; a setup problem, never "no regressions"). One module
per command, each with an ``add(sub)`` that adds its parser and sets ``handler``; the options several
commands share are defined once, in ``bench.commands.options``. To add a command, write a module and
list it in COMMANDS.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

# Only light modules here: `report` and `compare` must not import Keras or a backend.
from bench.commands import (
    ab,
    bisect,
    calibrate,
    compare,
    cuda_libs,
    explain,
    gpu_check,
    history,
    matrix,
    parity,
    report,
    run,
)
from bench.commands.options import UsageError

COMMANDS = (run, explain, report, compare, parity, ab, matrix, bisect, calibrate, history, gpu_check, cuda_libs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description="kerasbench: report on and compare "
                                     "benchmark result files. Exit codes: 0 fine, 1 regression, 2 usage error, "
                                     "3 not gated (compare, ab: lines that could not be gated, or no shared line).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add(sub)
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
