"""``python -m bench run``: the benchmarks once per backend, each in its own process, then the report."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import parity, plots, report, results, runner, sequential, settings, stats
from bench.commands.options import (
    UsageError,
    add_backends_option,
    add_benchmark_options,
    add_environment_options,
    add_python_option,
    backend_environments,
    environment_for,
    forwarded,
    load_runs,
    wrote,
)
from bench.environments import Environment


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="pytest bench/ under each backend, then the comparison table",
                       description="Run the benchmarks once per backend, each in its own process, going on past "
                                   "a failing backend; ends with the comparison table, written to the run folder. "
                                   "Benchmark options are the plugin's own (pytest bench/ --help); options after "
                                   "-- go to pytest as they are.")
    add_backends_option(p)
    p.add_argument("--run-dir", default=None,
                   help="where this run's results, logs and report go (default: <results>/runs/<time>)")
    p.add_argument("--repeat", type=settings.positive_int, default=1, metavar="N",
                   help="processes per backend, interleaved (tensorflow, jax, torch, tensorflow, ...); the report "
                        "shows the median of their medians with a 95%% interval over processes (default: 1)")
    p.add_argument("--margin", type=parity.margin_points, default=parity.DEFAULT_MARGIN, metavar="PTS",
                   help="val_accuracy difference between backends that still counts as equivalent, for the "
                        "report's parity section and --seeds auto (default: 1pt)")
    add_environment_options(p)
    add_python_option(p)
    add_benchmark_options(p)
    auto = p.add_argument_group(
        "--seeds auto", "the accuracy benchmark in batches of seeds until every pair of backends is settled, with a "
                        "group-sequential boundary (looking after every batch keeps the error at alpha 0.05)")
    auto.add_argument("--sd-bound", type=parity.margin_points, default=sequential.DEFAULT_SD_BOUND, metavar="PTS",
                      help="stated upper bound of the SD of per-seed differences of val_accuracy between two "
                           "backends; plans the seeds (default: 1pt)")
    auto.add_argument("--max-seeds", type=settings.bounded_int(settings.MAX_SEEDS),
                      default=sequential.DEFAULT_MAX_SEEDS, metavar="N",
                      help=f"cap on seeds (default: {sequential.DEFAULT_MAX_SEEDS})")
    auto.add_argument("--seed-batch", type=settings.positive_int, default=sequential.DEFAULT_BATCH, metavar="N",
                      help=f"seeds per look (default: {sequential.DEFAULT_BATCH})")
    auto.add_argument("--max-minutes", type=settings.positive_int, default=None, metavar="MIN",
                      help="no batch starts that would end past this many minutes (default: no cap)")
    auto.add_argument("--spending", choices=stats.SPENDING, default=sequential.DEFAULT_SPENDING,
                      help="alpha-spending function of the boundary (default: %(default)s)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    environment = environment_for(args, args.backends)
    own = backend_environments(args, environment)
    run_dir = Path(args.run_dir).resolve() if args.run_dir else runner.default_run_dir(settings.results_dir())
    if environment.kind != "project":
        print(f"run: the benchmark processes run on {environment.label}", flush=True)
    outcome = None
    if isinstance(getattr(args, "seeds", None), settings.AutoSeeds):
        outcomes, outcome = _auto(args, run_dir, environment, own)
    else:
        outcomes = runner.run_backends(args.backends, forwarded(args), run_dir, repeat=args.repeat,
                                       environment=environment, backend_environments=own)
    print("\n" + runner.summary(outcomes))
    runs, warnings = load_runs([run_dir], show_warnings=False)  # the report lists them
    found = results.results_of(runs)
    if found:
        parity_options = {} if outcome is None or not outcome.looks else {
            "levels": outcome.looks[-1].levels, "sd_bound": outcome.design.sd_bound}
        # The wide table goes to REPORT.md; the terminal gets the columns a person reads first.
        output, model = run_dir / "REPORT.md", report.build(found, warnings, args.margin, **parity_options)
        report.write(model, "md", output)
        print(report.terminal_table(model), end="")
        wrote(output)
        for path in plots.plot(model, run_dir):
            wrote(path)
    if outcome is not None:
        text = sequential.render(outcome)
        (run_dir / "SEQUENTIAL.md").write_text(text)
        print("\n" + text, end="")
        wrote(run_dir / "SEQUENTIAL.md")
    return 1 if any(o.failed for o in outcomes) else 0


def _auto(args: argparse.Namespace, run_dir: Path, environment: Environment,
          own: dict[str, Environment]) -> tuple[list[runner.Outcome], sequential.Outcome]:
    """--seeds auto: batches of seeds, each run on every backend, until every pair is settled."""
    try:
        design = sequential.Design(margin=args.margin, sd_bound=args.sd_bound, batch=args.seed_batch,
                                   max_seeds=args.max_seeds, spending=args.spending,
                                   max_seconds=args.max_minutes * 60 if args.max_minutes else None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    run_dir.mkdir(parents=True, exist_ok=True)
    outcomes: list[runner.Outcome] = []
    # One run id over every look: the report and the terminal table take the newest run per line,
    # and each look as a run of its own showed only the last look's seeds.
    run_id = runner.new_run_id()

    def run_batch(seeds: tuple[int, ...]) -> bool:
        args.seeds = settings.Seeds(seeds)
        # Only the accuracy benchmark is what the seeds are for; a -k after -- still wins.
        done = runner.run_backends(args.backends, ["-k", "test_accuracy", *forwarded(args)], run_dir,
                                   repeat=args.repeat, environment=environment, backend_environments=own,
                                   run_id=run_id)
        outcomes.extend(done)
        return not any(o.failed for o in done)

    outcome = sequential.run_until_settled(design, run_batch, sequential.analyze_folder(run_dir, design),
                                           write=lambda line: print(line, flush=True))
    wrote(sequential.save(outcome, run_dir))
    return outcomes, outcome
