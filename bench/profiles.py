"""Run profiles: how much data, how many rounds, how many epochs. One table, no logic."""

from __future__ import annotations

from dataclasses import dataclass


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
    description: str = ""

    def points(self, batch_size: int, maxlen: int) -> list[tuple[int, int]]:
        """The (batch size, maxlen) points the step benchmarks run at."""
        if not (self.sweep_batch_sizes or self.sweep_maxlens):
            return [(batch_size, maxlen)]
        by_batch = [(b, maxlen) for b in self.sweep_batch_sizes]
        by_length = [(batch_size, n) for n in self.sweep_maxlens if (batch_size, n) not in by_batch]
        return by_batch + by_length


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "smoke", 512, 256, epochs=1, warmup_rounds=1, train_rounds=5, predict_rounds=5,
            target_accuracy=0.55, staged_batches=2,
            description="checks that everything runs; under a minute per backend on 2 CPU cores",
        ),
        Profile(
            "quick", 5000, 2000, epochs=1, warmup_rounds=5, train_rounds=30, predict_rounds=50,
            target_accuracy=0.70,
            description="the default: compares backends in a few minutes each",
        ),
        Profile(
            "full", None, None, epochs=2, warmup_rounds=10, train_rounds=100, predict_rounds=200,
            target_accuracy=0.83,
            description="reproduces the keras.io run: 25k train, 25k validation, 2 epochs",
        ),
        Profile(
            "sweep", 1024, 1024, epochs=1, warmup_rounds=1, train_rounds=5, predict_rounds=10,
            target_accuracy=0.70, staged_batches=2,
            sweep_batch_sizes=(1, 8, 32, 128, 512), sweep_maxlens=(50, 100, 200, 400),
            description="how step latency grows with batch size and sequence length (no accuracy run)",
        ),
    )
}

DEFAULT_PROFILE = "quick"


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
