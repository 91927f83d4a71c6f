"""``python -m bench run``: the benchmarks once per backend, each in its own process, then the report."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import plots, report, results, runner, settings
from bench.commands.options import (
    add_backends_option,
    add_benchmark_options,
    add_environment_options,
    environment_for,
    forwarded,
    load_runs,
    wrote,
)


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
    add_environment_options(p)
    add_benchmark_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    environment = environment_for(args, args.backends)
    run_dir = Path(args.run_dir).resolve() if args.run_dir else runner.default_run_dir(settings.results_dir())
    if environment.kind != "project":
        print(f"run: the benchmark processes run on {environment.label}", flush=True)
    outcomes = runner.run_backends(args.backends, forwarded(args), run_dir, repeat=args.repeat, environment=environment)
    print("\n" + runner.summary(outcomes))
    runs, warnings = load_runs([run_dir], show_warnings=False)  # the report lists them
    found = results.results_of(runs)
    if found:
        # The wide table goes to REPORT.md; the terminal gets the columns a person reads first.
        output, model = run_dir / "REPORT.md", report.build(found, warnings)
        report.write(model, "md", output)
        print(report.terminal_table(model), end="")
        wrote(output)
        for path in plots.plot(model, run_dir):
            wrote(path)
    return 1 if any(o.failed for o in outcomes) else 0
