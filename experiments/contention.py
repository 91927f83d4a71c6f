"""What one competing busy process does to each backend's step, and what the contention watch records.

Run it alone on the machine (it makes its own competitor):

    .venv/bin/python -m experiments.contention [--backends tensorflow,jax,torch] [--threads N]
        [--out DIR] [-- PYTEST_ARGS]

Per backend, in turn: ``python -m bench run`` alone into DIR/alone, then again into DIR/busy while one
process spins a Python loop on the CPUs this one may use (started before, stopped after that backend's
run), so that drift of the machine falls on both sides of each backend alike. The benchmarks are the
quick profile's step benchmarks unless PYTEST_ARGS say otherwise. Prints per benchmark the median alone
and beside the busy process, their ratio, the share of the CPUs' time the watch saw other processes
take (``bench.contention``) and whether it flagged the line; then ``python -m bench compare DIR/alone
DIR/busy``, which refuses to gate the contended lines.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bench import results
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


def rows(alone: Sequence[results.Result], busy: Sequence[results.Result]) -> list[list[str]]:
    """One row per benchmark found on both sides: medians, ratio, the watch's share and flag on each side."""
    by_name = {r.name: r for r in alone if r.median_ms is not None}
    out = []
    for r in sorted(busy, key=lambda r: r.name):
        a = by_name.get(r.name)
        if a is None or r.median_ms is None:
            continue
        out.append([r.name, f"{a.median_ms:.1f}", f"{r.median_ms:.1f}", f"{r.median_ms / a.median_ms:.2f}",
                    *(f"{c.share:.0%}{' contended' if c.contended else ''}" if c else "not recorded"
                      for c in (a.contention, r.contention))])
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
    parser.add_argument("--out", type=Path, default=Path("results/runs/contention"))
    args = parser.parse_args(argv)
    for backend in args.backends.split(","):
        for side in ("alone", "busy"):
            command = [sys.executable, "-m", "bench", "run", "--backends", backend, "--profile", args.profile,
                       "--device", "cpu", "--threads", str(args.threads), "--run-dir", str(args.out / side),
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
