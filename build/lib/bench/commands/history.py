"""``python -m bench history``: each benchmark's median over time, with commits and machines; steps marked."""

from __future__ import annotations

import argparse

from bench import history, plots, settings
from bench.commands.options import UsageError, fraction, load_runs, wrote


def add(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    runs, _ = load_runs(args.paths)
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
            wrote(plots.history(series, args.plot))
        except ImportError:
            raise UsageError("--plot needs matplotlib: pip install 'kerasbench[report]'") from None
    return 0
