"""``python -m bench compare BASELINE CURRENT``: the regression gate; exit 1 on a regression."""

from __future__ import annotations

import argparse

from bench import compare as cmp
from bench.commands.options import add_gate_options, gate, load_results


def add(sub: argparse._SubParsersAction) -> None:
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
    add_gate_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    baseline, _ = load_results([args.baseline], "baseline")
    current, _ = load_results([args.current], "current")
    text, regressions = gate(args, baseline, current)
    print(cmp.package_header(baseline, current) + text, end="")
    return 1 if regressions else 0
