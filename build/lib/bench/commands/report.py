"""``python -m bench report``: tables and plots from result files."""

from __future__ import annotations

import argparse

from bench import parity, plots, report
from bench.commands.options import UsageError, load_results, results_paths, show, wrote


def add(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    found, warnings = load_results(results_paths(args.paths), "")
    output, model = args.output, report.build(found, warnings, args.margin)
    try:
        text = report.write(model, args.format, output)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    show(text)
    if output is not None:
        wrote(output)
    if args.plots:
        try:
            written = plots.plot(model, args.plots)
        except ImportError:
            raise UsageError("--plots needs matplotlib: pip install 'kerasbench[report]'") from None
        for path in written:
            wrote(path)
    return 0
