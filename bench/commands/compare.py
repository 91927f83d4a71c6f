"""``python -m bench compare BASELINE CURRENT``: the regression gate; exit 1 on a regression, 3 when not gated."""

from __future__ import annotations

import argparse

from bench import compare as cmp
from bench.commands.options import add_gate_options, gate, load_results


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="baseline vs current; exit 1 on a regression, 3 when lines could not be gated",
        description="Compare two sets of results (each side: the processes of its newest run). A latency "
                    "regression needs a one-sided Welch t test on log process medians to reject at the family-wise "
                    "level 1 - confidence (Holm over every gated line) AND the ratio of geometric means past the "
                    "threshold; this machine's calibrated between-process variance is pooled in when there is one. "
                    f"Gating needs {cmp.MIN_PROCESSES} processes a side (python -m bench run --repeat "
                    f"{cmp.MIN_PROCESSES}); results from different machines, and lines whose process medians fall "
                    f"into two modes, are not gated. Exit {cmp.EXIT_REGRESSION} on a regression, "
                    f"{cmp.EXIT_NOT_GATED} when a line both sides share could not be gated or they share none.")
    p.add_argument("baseline", metavar="BASELINE", help="result file or folder")
    p.add_argument("current", metavar="CURRENT", help="result file or folder")
    add_gate_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    baseline, _ = load_results([args.baseline], "baseline")
    current, _ = load_results([args.current], "current")
    text, summary = gate(args, baseline, current)
    print(cmp.package_header(baseline, current) + text, end="")
    return summary.exit_status
