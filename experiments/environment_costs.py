"""What an environment costs before the first benchmark starts: an overlay and a full environment, cold and cached.

Run it alone on the machine (the index must be reachable):

    .venv/bin/python -m experiments.environment_costs [--overlay keras==3.13.2] [--full jax==0.9.2]
        [--backends jax] [--repeat 3]

Every repeat uses a fresh environment cache and a fresh uv cache (both in a temporary folder), so
"cold" includes the downloads; "cached" is ``prepare`` again on the same cache, which is what every
later command pays. Prints each time and the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench import environments
from bench.settings import CHECKOUT, positive_int


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.environment_costs",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--overlay", default="keras==3.13.2", help="pins for the overlay")
    parser.add_argument("--full", default="jax==0.9.2", help="pins for the full environment")
    parser.add_argument("--backends", default="jax", help="the extras the full environment holds")
    parser.add_argument("--repeat", type=positive_int, default=3)
    args = parser.parse_args(argv)
    seconds: dict[str, list[float]] = {}
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="kerasbench-costs-") as scratch:
            os.environ["UV_CACHE_DIR"] = str(Path(scratch) / "uv")
            for kind, pins in (("overlay", args.overlay), ("full", args.full)):
                request = environments.Request.parse(pins, backends=args.backends.split(","))
                for state in ("cold", "cached"):
                    env = environments.prepare(request, root=CHECKOUT, cache=Path(scratch) / "envs", log=False)
                    seconds.setdefault(f"{kind} {state}", []).append(env.prepare_s)
                    print(f"{i + 1}/{args.repeat} {kind} {state} ({env.label}): {env.prepare_s:.2f} s", flush=True)
    for what, values in seconds.items():
        print(f"{what}: median {statistics.median(values):.2f} s over {len(values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
