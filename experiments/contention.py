"""What one competing busy process does to each backend's step, and what the contention watch records.

Run it alone on the machine (it makes its own competitor):

    .venv/bin/python -m experiments.contention [--backends tensorflow,jax,torch] [--threads N]
        [--repeat N] [--out DIR] [-- PYTEST_ARGS]

Per backend, in turn: ``python -m bench run`` alone into DIR/alone, then again into DIR/busy while one
process spins a Python loop on the CPUs this one may use (started before, stopped after that backend's
run), so that drift of the machine falls on both sides of each backend alike. The benchmarks are the
quick profile's step benchmarks unless PYTEST_ARGS say otherwise; ``--repeat 3`` gives each side the
processes compare needs, so that contention is its only reason to refuse. Prints per benchmark the median
of the process medians alone and beside the busy process, their ratio, the largest share of the CPUs'
time the watch saw other processes take (``bench.contention``) and how many processes it flagged; then
``python -m bench compare DIR/alone DIR/busy``, which refuses to gate the contended lines.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bench import results, selection
from bench.fingerprint import usable_cpus
from bench.settings import positive_int
from bench.tables import table

DEFAULT_PYTEST_ARGS = ("-k", "test_train_step or test_predict_step")
SPIN = "while True: pass"


@contextmanager
def busy_process() -> Iterator[subprocess.Popen]:
    """One process spinning on this process's CPUs (it inherits the affinity) until the block ends."""
    proc = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)


def _watch(side: Sequence[results.Result]) -> str:
    """The largest share the watch read over a side's processes, and how many it flagged."""
    seen = [r.contention for r in side if r.contention]
    if not seen:
        return "not recorded"
    flagged = sum(c.contended for c in seen)
    share = f"{max(c.share for c in seen):.0%}"
    if not flagged:
        return share
    return f"{share} contended" + (f" ({flagged} of {len(side)})" if len(side) > 1 else "")


def rows(alone: Sequence[results.Result], busy: Sequence[results.Result]) -> list[list[str]]:
    """One row per benchmark found on both sides: the median of its process medians, the ratio, and the watch."""
    def by_name(side: Sequence[results.Result]) -> dict[str, list[results.Result]]:
        found: dict[str, list[results.Result]] = {}
        for r in side:
            if r.median_ms is not None:
                found.setdefault(r.name, []).append(r)
        return found

    a_side, b_side = by_name(alone), by_name(busy)
    out = []
    for name in sorted(set(a_side) & set(b_side)):
        a, b = (selection.aggregate(side[name]).median_ms for side in (a_side, b_side))
        out.append([name, f"{a:.1f}", f"{b:.1f}", f"{b / a:.2f}", _watch(a_side[name]), _watch(b_side[name])])
    return out


HEADERS = ("Benchmark", "Alone ms", "Beside 1 busy process ms", "Ratio", "Others' share alone",
           "Others' share busy")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else list(DEFAULT_PYTEST_ARGS)
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m experiments.contention", description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--threads", type=positive_int, default=usable_cpus())
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--repeat", type=positive_int, default=1, help="processes per backend and side")
    parser.add_argument("--out", type=Path, default=Path("results/runs/contention"))
    args = parser.parse_args(argv)
    for backend in args.backends.split(","):
        for side in ("alone", "busy"):
            command = [sys.executable, "-m", "bench", "run", "--backends", backend, "--profile", args.profile,
                       "--device", "cpu", "--threads", str(args.threads), "--repeat", str(args.repeat),
                       "--run-dir", str(args.out / side),
                       "--", *extra]
            print(f"{backend}, {side}: {' '.join(command[1:])}", flush=True)
            if side == "busy":
                with busy_process():
                    done = subprocess.run(command, capture_output=True, text=True)
            else:
                done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
                return done.returncode
    sides = [results.results_of(results.load([args.out / side])[0]) for side in ("alone", "busy")]
    print("\n" + table(HEADERS, rows(*sides)))
    compare = subprocess.run([sys.executable, "-m", "bench", "compare", str(args.out / "alone"),
                              str(args.out / "busy")], capture_output=True, text=True)
    print(f"\n$ python -m bench compare {args.out / 'alone'} {args.out / 'busy'}  (exit {compare.returncode})\n"
          + compare.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
