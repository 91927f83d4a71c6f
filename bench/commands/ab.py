"""``python -m bench ab BASE HEAD``: two commits on this machine, interleaved, then the gate of ``compare``."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bench import ab, environments, results, runner, settings
from bench import compare as cmp
from bench.commands.options import (
    UsageError,
    add_backends_option,
    add_benchmark_options,
    add_environment_options,
    add_gate_options,
    forwarded,
    gate,
    load_results,
    wrote,
)


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ab", help="two commits on this machine, interleaved, then compare; exit 1 on a regression, 3 when not gated",
        description="Check out BASE and HEAD as git worktrees, run the benchmarks of each with its own code, "
                    "interleaved (base, head, then head, base, ... per backend: the sides take turns going first), "
                    "then compare them with the gate of `python -m bench compare`. Both sides use this "
                    "interpreter's packages, except where the commits' constraints.txt differ (each side then "
                    "gets its own pinned set: a cached overlay or full environment) or --base-with/--head-with/"
                    "--base-constraints/--head-constraints choose a side's set. Exit 1 on a regression or when a "
                    "benchmark process failed, 3 when a line could not be gated.")
    p.add_argument("base", metavar="BASE_REF", help="the reference commit (branch, tag, hash)")
    p.add_argument("head", metavar="HEAD_REF", help="the commit under test")
    p.add_argument("--repo", default=str(settings.CHECKOUT), metavar="DIR",
                   help="the git checkout the refs are in (default: this one)")
    p.add_argument("--repeat", type=settings.positive_int, default=cmp.MIN_PROCESSES, metavar="N",
                   help=f"processes per side per backend (default: {cmp.MIN_PROCESSES}, the fewest the gate acts on)")
    add_backends_option(p)
    p.add_argument("--run-dir", default=None,
                   help="where both sides' results, logs and COMPARE.md go (default: <results>/runs/ab-<time>)")
    p.add_argument("--base-args", type=shlex.split, default=[], metavar="OPTIONS",
                   help="benchmark options for the base side only, e.g. \"--maxlen 200\"")
    p.add_argument("--head-args", type=shlex.split, default=[], metavar="OPTIONS",
                   help="benchmark options for the head side only, e.g. \"--maxlen 220\" (then --match name)")
    for side in ab.SIDES:
        add_environment_options(p, side)
    add_gate_options(p)
    add_benchmark_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir) if args.run_dir else runner.default_run_dir(settings.results_dir(), "ab-")
    try:
        chosen = {side: ab.SideEnvironment(tuple(getattr(args, f"{side}_with_packages").split()),
                                           _path(getattr(args, f"{side}_constraints")))
                  for side in ab.SIDES}
        done = ab.run_ab(args.base, args.head, repo=Path(args.repo), backends=args.backends,
                         pytest_args=forwarded(args), repeat=args.repeat, run_dir=run_dir,
                         base_args=args.base_args, head_args=args.head_args, chosen=chosen)
    except (ab.RefError, environments.EnvironmentFailed) as exc:
        raise UsageError(str(exc)) from None
    print("\n" + runner.summary(done.outcomes))
    failed = [o for o in done.outcomes if o.failed]
    base = ab.as_one_run(load_results([done.side("base")], "base")[0], done.run_ids["base"])
    head = ab.as_one_run(load_results([done.side("head")], "head")[0], done.run_ids["head"])
    text, summary = gate(args, base, head)
    header = ab.compare_header(done, args.base, args.head, base_args=args.base_args, head_args=args.head_args,
                               repeat=args.repeat, head=head, base=base)
    results.write_text_atomic(done.run_dir / ab.COMPARE_FILE, header + text)
    print(header + text, end="")
    wrote(done.run_dir / ab.COMPARE_FILE)
    if failed:
        print(f"{len(failed)} benchmark process(es) failed: " + ", ".join(o.label for o in failed), file=sys.stderr)
    return cmp.EXIT_REGRESSION if failed else summary.exit_status


def _path(option: str | None) -> Path | None:
    """A constraints file option, resolved now: ab runs its sides from other folders."""
    return Path(option).resolve() if option else None
