"""``python -m bench bisect PACKAGE GOOD BAD -k BENCHMARK``: the first release between GOOD and BAD that changed it."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import bisect, index, results, runner, settings
from bench import compare as cmp
from bench.commands.options import (
    UsageError,
    add_backends_option,
    add_benchmark_options,
    add_verdict_options,
    forwarded,
    wrote,
)


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bisect", help="binary search over a package's releases for the one that changed a benchmark",
        description="Measure GOOD against BAD (interleaved, N processes each, each release in its own cached "
                    "environment) and, when the gate sees a change, search the releases between them: each probe "
                    "is measured against GOOD in the same sitting and falls on the bad side when a benchmark that "
                    "changed between the ends changes the same way. Prints each probe and the first release on the "
                    "bad side, and writes BISECT.md with the evidence. Exit 0 when found, 1 when the ends do not "
                    "differ beyond the gate.")
    p.add_argument("package", metavar="PACKAGE", help="e.g. keras, jax")
    p.add_argument("good", metavar="GOOD", help="a release without the change, e.g. 3.10.0")
    p.add_argument("bad", metavar="BAD", help="a release with it, e.g. 3.15.1")
    p.add_argument("-k", dest="expression", required=True, metavar="BENCHMARK",
                   help="pytest's -k expression choosing the benchmark(s), e.g. \"train_step and not native\"")
    p.add_argument("--find-links", default=None, metavar="DIR",
                   help="take the releases from this folder of wheels only (no index)")
    p.add_argument("--repeat", type=settings.positive_int, default=cmp.MIN_PROCESSES, metavar="N",
                   help=f"processes per release and backend in each probe (default: {cmp.MIN_PROCESSES})")
    add_backends_option(p)
    p.add_argument("--run-dir", default=None,
                   help="where each probe's results and logs and BISECT.md go (default: <results>/runs/bisect-<time>)")
    add_verdict_options(p)
    add_benchmark_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = index.find_links_only(args.find_links) if args.find_links else index.from_pip_config()
    try:
        versions = bisect.releases_between(args.package, args.good, args.bad, config)
    except (bisect.BisectError, index.IndexUnreachable) as exc:
        raise UsageError(str(exc)) from None
    run_dir = (Path(args.run_dir) if args.run_dir
               else runner.default_run_dir(settings.results_dir(), "bisect-")).resolve()
    measure = bisect.measuring(args.package, backends=args.backends, pytest_args=[*forwarded(args), "-k",
                                                                                   args.expression],
                               repeat=args.repeat, run_dir=run_dir, root=settings.CHECKOUT, config=config)
    try:
        found = bisect.bisect(args.package, versions, measure, threshold=args.threshold, confidence=args.confidence,
                              min_processes=args.min_processes)
    except bisect.BisectError as exc:
        raise UsageError(str(exc)) from None
    text = bisect.render(found)
    path = run_dir / bisect.BISECT_FILE
    results.write_text_atomic(path, text)
    print("\n" + text, end="")
    wrote(path)
    return 0 if found.found else 1
