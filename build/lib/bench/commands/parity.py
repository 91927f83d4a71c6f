"""``python -m bench parity``: does accuracy hold across backends? (several seeds per backend)"""

from __future__ import annotations

import argparse

from bench import parity, sequential
from bench.commands.options import fraction, load_results, results_paths, show


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "parity", help="does accuracy hold across backends? (several seeds per backend)",
        description="Per backend the mean final val_accuracy over seeds with its 95%% interval; per pair of backends "
                    "the per-seed differences (paired t interval, paired TOST against --margin) and a verdict: "
                    "equivalent, different but within the margin, different by more than it, or not settled; the "
                    "same for epochs and seconds to the target accuracy. Results of every file are pooled per seed. "
                    "A folder of a `run --seeds auto` is judged at its last look, with its design's boundary.")
    p.add_argument("paths", nargs="*", metavar="FILE_OR_FOLDER",
                   help="result files or folders of them (default: $KERASBENCH_RESULTS or results/)")
    p.add_argument("--margin", type=parity.margin_points, default=parity.DEFAULT_MARGIN, metavar="PTS",
                   help="val_accuracy difference that still counts as equivalent, e.g. 1pt or 0.01 (default: 1pt)")
    p.add_argument("--time-margin", type=fraction, default=parity.DEFAULT_TIME_MARGIN, metavar="PCT",
                   help="epochs and seconds to the target: ratio that still counts as equivalent (default: 10%%)")
    p.add_argument("--sd-bound", type=parity.margin_points, default=None, metavar="PTS",
                   help="stated upper bound of the SD of per-seed differences: an unsettled pair then says how many "
                        "seeds it would need (default: the design's, for a --seeds auto run)")
    p.add_argument("--format", choices=("md", "json"), default="md", help="output format (default: md)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    paths = results_paths(args.paths)
    found, _ = load_results(paths, "")
    options = {}
    saved = sequential.saved_levels(paths)
    if saved is not None:
        options["levels"], options["sd_bound"] = saved
    if args.sd_bound is not None:
        options["sd_bound"] = args.sd_bound
    show(parity.render(found, args.margin, args.time_margin, args.format, **options))
    return 0
