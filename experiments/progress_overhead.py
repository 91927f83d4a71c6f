"""Does the progress line change the epoch time? Epochs with and without it, interleaved; medians.

One backend per process (Keras fixes its backend at import); run it alone on the machine:

    KERAS_BACKEND=jax .venv/bin/python -m experiments.progress_overhead [--pairs 3] [--train-samples 5000]
        [--test-samples 2000] [--dataset auto] [--device cpu] [--threads N]

One model, one untimed warm-up epoch (compilation), then ``2 * pairs`` epochs of
``bench.training.fit_epoch`` (as the accuracy benchmark runs them) in ABBA order (on, off, off,
on, on, off, ...), so that a drift of the machine falls on both sides alike. "On" writes the
progress lines to stderr at the usual pace (``training.PROGRESS_EVERY_S``), as pytest and
``bench run`` show them. Prints every epoch's seconds, the median with and without progress, their
ratio, and a Mann-Whitney U test (SciPy) of the two sets of epoch times. Epochs continue training
the same model, so later epochs see other weights: that changes no step's cost.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from bench.fingerprint import usable_cpus
from bench.runner import abba


def order(pairs: int) -> list[bool]:
    """ABBA: True (progress on) and False interleaved, each first in every other pair."""
    return [on for i in range(pairs) for on in abba((True, False), i)]


def main(argv: list[str] | None = None) -> int:
    from bench import backends
    from bench.data import SOURCES, load_imdb
    from bench.settings import positive_int

    parser = argparse.ArgumentParser(prog="python -m experiments.progress_overhead", description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=positive_int, default=3, help="epochs with and without progress, each")
    parser.add_argument("--train-samples", type=positive_int, default=5000)
    parser.add_argument("--test-samples", type=positive_int, default=2000)
    parser.add_argument("--dataset", choices=SOURCES, default="auto")
    parser.add_argument("--device", choices=backends.DEVICES, default="cpu")
    parser.add_argument("--threads", type=positive_int, default=usable_cpus())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    backends.prepare_environment(args.device)  # before Keras is imported
    adapter = backends.configure(args.device, args.threads)

    from bench import training
    from model import DEFAULT_CONFIG, build_model, initialize_weights

    data = load_imdb(args.dataset, max_features=DEFAULT_CONFIG.max_features, maxlen=DEFAULT_CONFIG.maxlen,
                     train_samples=args.train_samples, test_samples=args.test_samples)
    model = build_model()
    initialize_weights(model, args.seed)
    batch = DEFAULT_CONFIG.batch_size
    plan = order(args.pairs)
    write = lambda line: print(line, file=sys.stderr, flush=True)
    print(f"{adapter.name} on {adapter.device.name}, {data.source} data, {len(data.y_train)} / {len(data.y_test)} "
          f"reviews: 1 warm-up epoch, then {len(plan)} epochs (progress on/off: "
          f"{' '.join('on' if on else 'off' for on in plan)})", flush=True)
    training.fit_epoch(model, data, 1, batch, args.seed)  # compiles; not counted
    seconds: dict[bool, list[float]] = {True: [], False: []}
    for epoch, on in enumerate(plan, start=2):
        progress = training.Progress(write, epochs=len(plan) + 1, label="overhead check") if on else None
        record = training.fit_epoch(model, data, epoch, batch, args.seed, progress)
        seconds[on].append(record.seconds)
        print(f"epoch {epoch}: progress {'on ' if on else 'off'} {record.seconds:8.2f} s", flush=True)
    on, off = np.median(seconds[True]), np.median(seconds[False])
    from scipy import stats

    test = stats.mannwhitneyu(seconds[True], seconds[False], alternative="two-sided")
    print(f"median epoch: progress on {on:.2f} s, off {off:.2f} s, on/off {on / off:.3f}; "
          f"Mann-Whitney U p = {test.pvalue:.3f} ({args.pairs} epochs each side)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
