"""``python -m bench parity``: does accuracy hold across backends? (several seeds per backend)"""

from __future__ import annotations

import argparse

from bench import parity
from bench.commands.options import fraction, load_results, results_paths, show


def add(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    found, _ = load_results(results_paths(args.paths), "")
    show(parity.render(found, args.margin, args.time_margin, args.format))
    return 0
