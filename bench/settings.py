"""One run's settings: the option table, and the profile plus the user's overrides, checked once, up front.

``OPTIONS`` is the one definition of every benchmark option: the pytest plugin declares them and
``python -m bench run`` forwards the same flags. Each value is checked by its argparse type, where
it is declared.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.backends import DEVICES
from bench.data import SOURCES
from bench.profiles import DEFAULT_PROFILE, PROFILES, Profile, get_profile
from bench.variants import DEFAULT_VARIANT, VARIANTS, get_variant
from model import DEFAULT_CONFIG, ModelConfig

# Above this, a batch of the default model needs more memory than any machine we target; a
# typo (32000 for 32) should fail in a second, not after minutes of swapping.
MAX_BATCH_SIZE = 65536
MAX_MAXLEN = 100_000
MAX_SEED = 2**32 - 1  # NumPy's seeds are 32-bit
RESULTS_ENV = "KERASBENCH_RESULTS"
CHECKOUT = Path(__file__).resolve().parents[1]


def results_dir(option: str | os.PathLike | None = None) -> Path:
    """Where result files go: the option, else $KERASBENCH_RESULTS, else ``results/`` of this checkout.

    Absolute, and independent of the current directory, so that ``python -m bench run`` and the
    pytest processes it starts agree wherever they are started from.
    """
    chosen = option or os.environ.get(RESULTS_ENV) or CHECKOUT / "results"
    return Path(chosen).expanduser().resolve()


WHOLE_NUMBER = re.compile(r"\s*[+-]?[0-9]+\s*")


def whole_number(text: str) -> int:
    """ASCII digits with an optional sign: not "1_0" or non-ASCII digits, which ``int()`` also takes."""
    if not WHOLE_NUMBER.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def seed_int(text: str) -> int:
    """argparse type: a seed from 0 to 2**32 - 1."""
    value = whole_number(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{value} is not a seed: use 0 to {MAX_SEED}")
    return value


def bounded_int(limit: int) -> Callable[[str], int]:
    """argparse type: an integer from 1 to ``limit``."""

    def parse(text: str) -> int:
        value = positive_int(text)
        if value > limit:
            raise argparse.ArgumentTypeError(f"{value} is larger than the supported maximum {limit}")
        return value

    return parse


@dataclass(frozen=True)
class RunSettings:
    profile: Profile
    model: ModelConfig  # batch_size, maxlen and epochs live here
    variant: str
    dataset: str
    imdb_path: str | None
    device: str
    threads: int
    seed: int
    train_samples: int | None
    test_samples: int | None
    results_dir: Path

    def describe(self) -> dict:
        """The settings as a result file records them."""
        return {
            "profile": self.profile.name,
            "variant": self.variant,
            "dataset_requested": self.dataset,
            "device_requested": self.device,
            "batch_size": self.model.batch_size,
            "maxlen": self.model.maxlen,
            "epochs": self.model.epochs,
            "threads": self.threads,
            "seed": self.seed,
            "model_config": asdict(self.model),
        }


# (flag, argparse keywords): shared by conftest.py and `python -m bench run`.
OPTIONS: list[tuple[str, dict]] = [
    ("--profile", dict(choices=sorted(PROFILES), default=DEFAULT_PROFILE,
                       help="run size: smoke (<1 min/backend), quick (default, a few min), full (keras.io run)")),
    ("--variant", dict(choices=sorted(VARIANTS), default=DEFAULT_VARIANT,
                       help="backend switch: jit / no-jit, bf16 / fp16 mixed precision, spe8 (steps_per_execution)")),
    ("--dataset", dict(choices=SOURCES, default="auto",
                       help="IMDB source; auto: KERASBENCH_IMDB, else Keras, else synthetic")),
    ("--imdb-path", dict(default=None, help="aclImdb archive or folder (default: $KERASBENCH_IMDB)")),
    ("--device", dict(choices=DEVICES, default="auto", help="auto takes a GPU when there is one; cpu hides GPUs")),
    ("--batch-size", dict(type=bounded_int(MAX_BATCH_SIZE), default=None, help="override the batch size (32)")),
    ("--maxlen", dict(type=bounded_int(MAX_MAXLEN), default=None, help="override the sequence length (200)")),
    ("--epochs", dict(type=positive_int, default=None, help="override the profile's epochs (accuracy benchmark)")),
    ("--train-samples", dict(type=positive_int, default=None, help="override the profile's training reviews")),
    ("--test-samples", dict(type=positive_int, default=None, help="override the profile's validation reviews")),
    ("--threads", dict(type=positive_int, default=None, help="CPU threads for TF and torch (default: all cores)")),
    ("--seed", dict(type=seed_int, default=1337, help="seed for weights, batch order and synthetic data")),
    ("--results-dir", dict(default=None, help="where result files go (default: $KERASBENCH_RESULTS or results/)")),
]


def from_options(get: Callable[[str], object]) -> RunSettings:
    """Settings from parsed options; ``get(dest)`` returns an option's value."""
    profile = get_profile(get("profile"))
    overrides = {"epochs": get("epochs") or profile.epochs, **get_variant(get("variant"))}
    if get("batch_size"):
        overrides["batch_size"] = get("batch_size")
    if get("maxlen"):
        overrides["maxlen"] = get("maxlen")
    return RunSettings(
        profile=profile,
        model=DEFAULT_CONFIG.replace(**overrides),
        variant=get("variant"),
        dataset=get("dataset"),
        imdb_path=get("imdb_path"),
        device=get("device"),
        threads=get("threads") or os.cpu_count() or 1,
        seed=get("seed"),
        train_samples=get("train_samples") or profile.train_samples,
        test_samples=get("test_samples") or profile.test_samples,
        results_dir=results_dir(get("results_dir")),
    )
