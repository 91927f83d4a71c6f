"""Run profiles: how much data, how many rounds, how many epochs. One table, no logic."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AdaptiveRounds:
    """Timed rounds until the median's interval is within ±``target`` of the median, or a cap is reached."""

    target: float = 0.02  # relative half-width of the median's confidence interval: 0.02 means ±2%
    min_rounds: int = 10
    max_rounds: int = 200
    max_seconds: float = 60.0  # of timed rounds
    check_every: int = 5  # rounds between two looks at the interval (taken outside the timed calls)
    confidence: float = 0.95


@dataclass(frozen=True)
class Profile:
    name: str
    train_samples: int | None  # None: the whole split (25,000 for IMDB)
    test_samples: int | None
    epochs: int  # for the accuracy benchmark
    warmup_rounds: int  # untimed steps after the first (compile) step
    train_rounds: int  # timed train steps
    predict_rounds: int  # timed predict batches
    target_accuracy: float  # time-to-accuracy threshold on val_accuracy
    staged_batches: int = 8  # distinct batches cycled through by the step benchmarks
    sweep_batch_sizes: tuple[int, ...] = ()  # step benchmarks at each batch size (at the default maxlen)
    sweep_maxlens: tuple[int, ...] = ()  # and at each sequence length (at the default batch size)
    seeds: int = 1  # accuracy runs, seeds 0 to seeds - 1, unless --seed or --seeds say otherwise
    step_benchmarks: bool = True  # False: accuracy only (the step benchmarks skip)
    adaptive: AdaptiveRounds | None = None  # step benchmarks' rounds; None: train_rounds / predict_rounds
    # Batch-1 serving: its query count puts the 95% interval of this percentile within ± this margin.
    serve_percentile: float = 0.99
    serve_margin: float = 0.005
    description: str = ""

    @property
    def sweep(self) -> bool:
        """Whether the step benchmarks run at a grid of shapes: then they measure step latency and nothing else."""
        return bool(self.sweep_batch_sizes or self.sweep_maxlens)

    @property
    def accuracy(self) -> bool:
        """Whether the accuracy benchmark runs (the sweep measures step latency only)."""
        return not self.sweep

    def points(self, batch_size: int, maxlen: int) -> list[tuple[int, int]]:
        """The (batch size, maxlen) points the step benchmarks run at."""
        if not self.sweep:
            return [(batch_size, maxlen)]
        by_batch = [(b, maxlen) for b in self.sweep_batch_sizes]
        by_length = [(batch_size, n) for n in self.sweep_maxlens if (batch_size, n) not in by_batch]
        return by_batch + by_length


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "smoke", 512, 256, epochs=1, warmup_rounds=1, train_rounds=5, predict_rounds=5,
            target_accuracy=0.55, staged_batches=2, serve_percentile=0.90, serve_margin=0.05,
            description="checks that everything runs; under a minute per backend on 2 CPU cores",
        ),
        Profile(
            "quick", 5000, 2000, epochs=1, warmup_rounds=5, train_rounds=30, predict_rounds=50,
            target_accuracy=0.70,
            adaptive=AdaptiveRounds(target=0.015, min_rounds=10, max_rounds=120, max_seconds=45),
            description="the default: compares backends in a few minutes each",
        ),
        Profile(
            "full", None, None, epochs=2, warmup_rounds=10, train_rounds=100, predict_rounds=200,
            target_accuracy=0.83, serve_margin=0.0025,
            adaptive=AdaptiveRounds(target=0.01, min_rounds=20, max_rounds=400, max_seconds=180),
            description="reproduces the keras.io run: 25k train, 25k validation, 2 epochs",
        ),
        Profile(
            "sweep", 1024, 1024, epochs=1, warmup_rounds=1, train_rounds=5, predict_rounds=10,
            target_accuracy=0.70, staged_batches=2,
            sweep_batch_sizes=(1, 8, 32, 128, 512), sweep_maxlens=(50, 100, 200, 400),
            description="how step latency grows with batch size and sequence length (no accuracy run)",
        ),
        Profile(
            "parity", 5000, 2000, epochs=2, warmup_rounds=0, train_rounds=0, predict_rounds=0,
            target_accuracy=0.70, seeds=5, step_benchmarks=False,
            description="does accuracy hold across backends: the quick data, 2 epochs, 5 seeds, accuracy only",
        ),
    )
}

DEFAULT_PROFILE = "quick"


def is_sweep(name: str) -> bool:
    """Whether results of the profile ``name`` are sweep points (a name no longer in the table is not)."""
    profile = PROFILES.get(name)
    return profile is not None and profile.sweep


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
