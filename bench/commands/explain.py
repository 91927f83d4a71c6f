"""``python -m bench explain``: where a train step's time goes, per backend, Keras against native.

``run`` with ``--explain yes`` on the train-step benchmarks (Keras's and the native reference's): after
each one's timed rounds, the step is split into forward, backward, optimizer and overhead, and profiled
by operation family (bench/phases.py). REPORT.md gets the "Where the time goes" table, and the run
folder a breakdown PNG per group; the table is also printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import parity, report, results, runner, settings
from bench.commands import run as run_command
from bench.commands.options import add_backends_option, add_benchmark_options, add_environment_options, load_runs
from bench.report import markdown


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="split each backend's train step into phases and operation families",
                       description="Run the train-step benchmarks (Keras and native) under each backend with "
                                   "--explain yes: after the timed rounds, time the step beside variants that stop "
                                   "after the loss, the gradients and the optimizer's update, and profile it by "
                                   "operation family. Benchmark options are the plugin's own; options after -- go "
                                   "to pytest.")
    add_backends_option(p)
    p.add_argument("--run-dir", default=None, help="where results, logs and the report go (default: "
                                                   "<results>/runs/<time>)")
    add_environment_options(p)
    add_benchmark_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    args.explain, args.repeat, args.margin = "yes", 1, parity.DEFAULT_MARGIN
    args.run_dir = args.run_dir or str(runner.default_run_dir(settings.results_dir()))
    # The train steps only (a -k after -- narrows them further: pytest ANDs the two).
    args.pytest_args = ["-k", "train_step", *args.pytest_args]
    status = run_command.run(args)
    runs, warnings = load_runs([Path(args.run_dir)], show_warnings=False)
    section = markdown.phases_section(report.build(results.results_of(runs), warnings))
    print("\n" + ("\n".join(section) if section else "explain: no train step was split (see the logs)"))
    return status
