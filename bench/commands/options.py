"""What several commands share: option types, the option groups, loading result files, printing.

Each option group is added by one function here (``add_backends_option``, ``add_benchmark_options``,
``add_gate_options``), so a flag means the same in every command that takes it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import calibrate, environments, results, settings, stats
from bench import compare as cmp
from bench.backends import BACKENDS
from bench.selection import measured_on


class UsageError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


# ------------------------------------------------------------------------------------- option types

def fraction(text: str) -> float:
    """argparse type: '10%' or '0.1' -> 0.1. A bare number >= 1 is ambiguous and refused."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or percentage (e.g. 10% or 0.1)") from None
    if not raw.endswith("%") and value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is ambiguous: write {raw}% or {value / 100:g}")
    if value < 0 or value != value:  # NaN fails every comparison
        raise argparse.ArgumentTypeError(f"{text!r} must be zero or more")
    return value


def confidence_level(text: str) -> float:
    """argparse type: a confidence strictly between 0 and 1, written as 95% or 0.95."""
    value = fraction(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a confidence level between 0 and 100%")
    return value


def backend_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown backend(s) {', '.join(unknown) or repr(text)}; "
                                         f"choose from {','.join(BACKENDS)}")
    return names


# ------------------------------------------------------------------------------------ option groups

def add_backends_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backends", type=backend_list, default=list(BACKENDS), metavar="LIST",
                   help=f"comma-separated, from {','.join(BACKENDS)} (default: all)")


def add_python_option(p: argparse.ArgumentParser) -> None:
    """``--python BACKEND=PATH``: a backend's own interpreter (the GPU set: one venv per CUDA major)."""
    p.add_argument("--python", dest="pythons", action="append", type=backend_python, default=[],
                   metavar="BACKEND=PATH",
                   help="start BACKEND's processes with the interpreter PATH, e.g. tensorflow=.venv-gpu-tf/bin/python "
                        "(repeatable; a backend not named runs with this interpreter)")


def backend_python(text: str) -> tuple[str, str]:
    """'tensorflow=.venv-gpu-tf/bin/python' -> ('tensorflow', absolute path), checked."""
    name, sep, path = text.partition("=")
    if not sep or name not in BACKENDS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected BACKEND=PATH with BACKEND one of {', '.join(BACKENDS)}")
    found = Path(path).expanduser()
    if not found.is_file():
        raise argparse.ArgumentTypeError(f"{text!r}: no interpreter at {found}")
    return name, str(found.absolute())  # absolute: the processes start in the checkout; not resolved: a venv's link


def pythons_of(args: argparse.Namespace) -> dict[str, str]:
    """The backend -> interpreter map --python gave (the last one given for a backend wins)."""
    return dict(getattr(args, "pythons", []) or [])


def backend_environments(args: argparse.Namespace,
                         environment: environments.Environment) -> dict[str, environments.Environment]:
    """The environments --python gives backends of their own; a usage error beside --with / --constraints."""
    pythons = pythons_of(args)
    if pythons and environment.kind != "project":
        raise UsageError("--python names each backend's interpreter as it is; it cannot be combined with --with or "
                         "--constraints, which build one environment for every backend")
    return {backend: environments.venv(python) for backend, python in pythons.items()}


def add_environment_options(p: argparse.ArgumentParser, side: str = "") -> None:
    """``--with PINS`` and ``--constraints FILE``; for one side of ``ab``: ``--base-with``, ``--base-constraints``."""
    prefix, dest = (f"--{side}-", f"{side}_") if side else ("--", "")
    whose = f"the {side} side's processes" if side else "the benchmark processes"
    p.add_argument(f"{prefix}with", dest=f"{dest}with_packages", default="", metavar="PINS",
                   help=f"packages for {whose}, e.g. \"keras==3.14.1 jax==0.10.1\": pure-Python ones in a cached "
                        "overlay in front of this venv, compiled ones (jax, tensorflow, torch) in a cached full "
                        "environment built with uv")
    p.add_argument(f"{prefix}constraints", dest=f"{dest}constraints", default=None, metavar="FILE",
                   help=f"a constraints file for {whose}: its pins that differ from this venv are installed "
                        "the same way")


def environment_for(args: argparse.Namespace, backends: Sequence[str], side: str = "") -> environments.Environment:
    """The environment ``--with`` / ``--constraints`` ask for (``side``'s own), prepared; a failure is a usage error."""
    dest = f"{side}_" if side else ""
    try:
        request = environments.Request.parse(getattr(args, f"{dest}with_packages"), getattr(args, f"{dest}constraints"),
                                             backends)
        return environments.prepare(request, root=settings.CHECKOUT)
    except environments.EnvironmentFailed as exc:
        raise UsageError(str(exc)) from None


RUN_OWN = ("--results-dir",)  # `run` puts results in its run folder (--run-dir)


def add_benchmark_options(p: argparse.ArgumentParser) -> None:
    """The plugin's own options (values checked here, only those given are forwarded), then pytest's after --."""
    for flag, kwargs in settings.OPTIONS:
        if flag not in RUN_OWN:
            p.add_argument(flag, **{**kwargs, "default": argparse.SUPPRESS})
    p.set_defaults(pytest_args=[])  # what follows "--" on the command line (see bench.commands.main)
    p.epilog = "Options after -- go to pytest as they are, e.g. -- -k train_step."


def forwarded(args: argparse.Namespace) -> list[str]:
    """The benchmark options given, as flags for the pytest processes, then the pytest options after --."""
    flags = []
    for flag, _ in settings.OPTIONS:
        dest = flag.removeprefix("--").replace("-", "_")
        if hasattr(args, dest):
            flags += [flag, str(getattr(args, dest))]
    return [*flags, *args.pytest_args]


def add_verdict_options(p: argparse.ArgumentParser) -> None:
    """The latency gate's own options (compare, ab, matrix, bisect)."""
    p.add_argument("--threshold", type=fraction, default=cmp.DEFAULT_THRESHOLD, metavar="PCT",
                   help=f"slowdown that counts, e.g. 3%% or 0.03 (default: {cmp.DEFAULT_THRESHOLD * 100:g}%%)")
    p.add_argument("--confidence", type=confidence_level, default=cmp.DEFAULT_CONFIDENCE, metavar="LEVEL",
                   help="of each line's interval; 1 - LEVEL is the gate's family-wise false-alarm rate over the "
                        "gated lines (Holm), e.g. 95%% or 0.99 (default: 95%%)")
    p.add_argument("--min-processes", type=settings.positive_int, default=cmp.MIN_PROCESSES, metavar="N",
                   help=f"fewest processes a side to gate on (default: {cmp.MIN_PROCESSES})")


def add_gate_options(p: argparse.ArgumentParser) -> None:
    add_verdict_options(p)
    p.add_argument("--noise", metavar="FILE", default=None,
                   help=f"between-process variance from `python -m bench calibrate` (default: <results>/"
                        f"{calibrate.CALIBRATION_FILE} when it exists; 'none' to ignore it)")
    p.add_argument("--accuracy-drop", type=fraction, default=cmp.DEFAULT_ACCURACY_DROP, metavar="DROP",
                   help="absolute val_accuracy drop that counts (default: 0.02)")
    p.add_argument("--match", choices=("group", "name"), default="group",
                   help="pair benchmarks by name and comparison group (default), or by name alone: an A/B of "
                        "settings, e.g. --maxlen 200 against 220 (the line then notes what differs)")
    p.add_argument("--format", choices=("md", "plain"), default="md", help="diff table format (default: md)")
    p.add_argument("--export-github-action", metavar="DIR", default=None,
                   help="write the current results as github-action-benchmark input: "
                        "DIR/customSmallerIsBetter.json and DIR/customBiggerIsBetter.json")
    p.add_argument("--export-bencher", metavar="PATH", default=None,
                   help="write the current results as Bencher Metric Format JSON")


def gate(args: argparse.Namespace, baseline: list[results.Result],
         current: list[results.Result]) -> tuple[str, cmp.Summary]:
    """compare's verdict with the gate options of ``args``; writes the exports it asks for."""
    noise = process_noise(args.noise, current)
    text, summary = cmp.gate(baseline, current, threshold=args.threshold, accuracy_drop=args.accuracy_drop,
                             confidence=args.confidence, min_processes=args.min_processes, noise=noise,
                             match=args.match, style=args.format)
    try:
        if args.export_github_action:
            for path in cmp.write_github_action_benchmark(current, args.export_github_action):
                wrote(path)
        if args.export_bencher:
            wrote(cmp.write_bencher(current, args.export_bencher))
    except OSError as exc:
        raise UsageError(f"cannot write export: {exc}") from None
    return text, summary


def process_noise(option: str | None, current: list[results.Result]) -> dict[str, stats.ProcessNoise]:
    """The --noise option's calibrated noise for the machine ``current`` was measured on (none for 'none')."""
    if option == "none":
        return {}
    try:
        noise, note = calibrate.noise_for(calibration_file(option), measured_on(current), required=bool(option))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if note:
        print(note, file=sys.stderr)
    return noise


def calibration_file(option: str | None) -> Path:
    """The calibration file an option names, else the one beside the results."""
    return Path(option) if option else settings.results_dir() / calibrate.CALIBRATION_FILE


# ------------------------------------------------------------------------------------ loading, output

def load_runs(paths: Sequence[str | Path], *, show_warnings: bool = True) -> tuple[list[results.Run], list[str]]:
    """The runs in result files or folders; a damaged file is a usage error, warnings go to stderr."""
    try:
        runs, warnings = results.load(paths)
    except results.SchemaError as exc:
        raise UsageError(f"damaged result file: {exc}") from None
    if show_warnings:
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return runs, warnings


def load_results(paths: Sequence[str | Path], what: str) -> tuple[list[results.Result], list[str]]:
    """Every result in ``paths`` (``what`` names them in the error: "baseline", ...); none is a usage error."""
    runs, warnings = load_runs(paths)
    found = results.results_of(runs)
    if not found:
        where = " ".join(map(str, paths))
        raise UsageError(f"no readable results in {what + ' ' if what else ''}{where}")
    return found, warnings


def results_paths(paths: Sequence[str]) -> list[str | Path]:
    """The positional FILE_OR_FOLDER arguments, else the results folder."""
    return list(paths) or [settings.results_dir()]


def show(text: str) -> None:
    """Print a rendered table or document, ending in exactly one newline."""
    print(text, end="" if text.endswith("\n") else "\n")


def wrote(path: str | Path) -> None:
    print(f"wrote {path}", file=sys.stderr)
