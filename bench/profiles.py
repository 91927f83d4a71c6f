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
    description: str = ""


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
    )
}

DEFAULT_PROFILE = "quick"


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
