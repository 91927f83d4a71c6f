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
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.backends import DEVICES
from bench.data import SOURCES
from bench.distributed.layout import MAX_REPLICAS, SCALINGS, Layout
from bench.fingerprint import usable_cpus
from bench.profiles import DEFAULT_PROFILE, PROFILES, AdaptiveRounds, Profile, get_profile
from bench.variants import DEFAULT_VARIANT, VARIANTS, get_variant
from model import DEFAULT_CONFIG, ModelConfig

# Above this, a batch of the default model needs more memory than any machine we target; a
# typo (32000 for 32) should fail in a second, not after minutes of swapping.
MAX_BATCH_SIZE = 65536
MAX_MAXLEN = 100_000
MAX_SEED = 2**32 - 1  # NumPy's seeds are 32-bit
DEFAULT_SEED = 1337
MAX_SEEDS = 1000  # --seeds N: a typo (10000 for 10) should fail at once, not after days of training
RESULTS_ENV = "KERASBENCH_RESULTS"
ROUNDS = ("profile", "adaptive", "fixed")
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


class Seeds(tuple):
    """Seeds that print as the option is written ("0,1,2"), so `python -m bench run` forwards them as text."""

    def __str__(self) -> str:
        return ",".join(map(str, self))


class AutoSeeds(Seeds):
    """--seeds auto: no seeds yet; ``python -m bench run`` runs them in batches until the answer settles."""

    def __str__(self) -> str:
        return "auto"


AUTO_SEEDS = AutoSeeds()


def seed_list(text: str) -> Seeds:
    """argparse type for --seeds: "0,1,2,3,4" (those seeds, no repeats), a count "5" (seeds 0 to 4), or "auto"."""
    if text.strip().lower() == "auto":
        return AUTO_SEEDS
    if "," not in text:
        count = positive_int(text)
        if count > MAX_SEEDS:
            raise argparse.ArgumentTypeError(f"{count} seeds is more than the supported maximum {MAX_SEEDS}")
        return Seeds(range(count))
    seeds = Seeds(seed_int(part) for part in text.split(",") if part.strip())
    if not seeds:
        raise argparse.ArgumentTypeError(f"{text!r} names no seed")
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r} repeats a seed: each seed would give the same run again")
    return seeds


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
    seed: int  # the step benchmarks' seed
    train_samples: int | None
    test_samples: int | None
    results_dir: Path
    seeds: tuple[int, ...] = ()  # the accuracy benchmark runs once per seed; empty means (seed,)
    rounds: str = "profile"  # step benchmarks' rounds: "profile", "adaptive" or "fixed" (ROUNDS)
    strict_gpu: bool = False  # other processes on the GPU: an error (True) or a warning
    strict_cpu: bool = False  # a contended benchmark (other processes on its CPUs): a failure (True) or a warning
    explain: bool = False  # split train steps into phases after their timed rounds (bench/phases.py)
    layout: Layout = field(default_factory=Layout)  # --devices/--processes/--scaling (bench/distributed/)

    @property
    def accuracy_seeds(self) -> tuple[int, ...]:
        return self.seeds or (self.seed,)

    @property
    def adaptive(self) -> AdaptiveRounds | None:
        """How the step benchmarks' rounds end: adaptively (the profile's, or the defaults), or None: fixed."""
        if self.rounds == "fixed":
            return None
        if self.rounds == "adaptive":
            return self.profile.adaptive or AdaptiveRounds()
        return self.profile.adaptive

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
            "layout": self.layout.as_dict(),
            "seeds": list(self.accuracy_seeds),
            "rounds": self.rounds,
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
    ("--threads", dict(type=positive_int, default=None,
                       help="CPU threads for every backend (default: the CPUs this process may use)")),
    ("--seed", dict(type=seed_int, default=None,
                    help=f"seed for weights and batch order (default {DEFAULT_SEED}); one accuracy run")),
    ("--seeds", dict(type=seed_list, default=None, metavar="LIST_OR_COUNT",
                     help="run the accuracy benchmark once per seed: 0,1,2,3,4 or a count (5 = seeds 0 to 4); "
                          "auto (python -m bench run only): batches of seeds until every pair of backends is "
                          "settled; default: the profile's (parity: 5), else --seed")),
    ("--results-dir", dict(default=None, help="where result files go (default: $KERASBENCH_RESULTS or results/)")),
    ("--rounds", dict(choices=ROUNDS, default="profile",
                      help="step benchmarks' timed rounds: the profile's (quick, full: adaptive), adaptive (until the "
                           "median's 95%% interval is within the profile's target) or fixed (the profile's counts)")),
    # A value-taking flag (--strict-gpu alone means yes) so that `python -m bench run` forwards it as it is.
    ("--strict-gpu", dict(nargs="?", const="yes", default="no", choices=("yes", "no"),
                          help="fail, instead of warning, when other processes use the GPU the run measures on")),
    ("--strict-cpu", dict(nargs="?", const="yes", default="no", choices=("yes", "no"),
                          help="fail, instead of warning, a benchmark whose timed rounds ran while other processes "
                               "used the CPUs it runs on (bench/contention.py)")),
    ("--explain", dict(nargs="?", const="yes", default="no", choices=("yes", "no"),
                       help="after each train step's timed rounds, split it into forward, backward, optimizer and "
                            "overhead, and profile its operation families (python -m bench explain)")),
    ("--devices", dict(type=bounded_int(MAX_REPLICAS), default=None,
                       help="train-step and accuracy benchmarks data-parallel over N devices of one process, through "
                            "the backend's engine (JAX, TensorFlow; on CPU N simulated devices); ids get -dpN")),
    ("--processes", dict(type=bounded_int(MAX_REPLICAS), default=None,
                         help="the same over N local processes (one device each) launched by the suite on 127.0.0.1; "
                              "rank 0 writes the results; ids get -mpN")),
    ("--scaling", dict(choices=SCALINGS, default="weak",
                       help="with --devices/--processes: weak keeps --batch-size per replica (global batch N times "
                            "larger), strong keeps it as the global batch (split over the N replicas)")),
]


def from_options(get: Callable[[str], object]) -> RunSettings:
    """Settings from parsed options; ``get(dest)`` returns an option's value."""
    profile = get_profile(get("profile"))
    overrides = {"epochs": get("epochs") or profile.epochs, **get_variant(get("variant"))}
    if get("batch_size"):
        overrides["batch_size"] = get("batch_size")
    if get("maxlen"):
        overrides["maxlen"] = get("maxlen")
    seed, seeds = get("seed"), get("seeds")
    if seed is not None and seeds is not None:
        raise ValueError("give --seed (one accuracy run) or --seeds (one per seed), not both")
    if isinstance(seeds, AutoSeeds):
        raise ValueError("--seeds auto runs seeds in batches until the answer settles: use python -m bench run, "
                         "which passes each batch on as --seeds LIST")
    if seeds is None:
        # A profile's seed count applies unless one seed was asked for.
        seeds = tuple(range(profile.seeds)) if seed is None and profile.seeds > 1 else None
    layout = Layout(devices=get("devices"), processes=get("processes"), scaling=get("scaling") or "weak")
    if layout.distributed:
        layout.batches(overrides.get("batch_size", DEFAULT_CONFIG.batch_size))  # strong scaling must divide it
        if overrides.get("steps_per_execution", 1) != 1:
            raise ValueError("--devices/--processes time one data-parallel step per call: the spe8 variant "
                             "(steps_per_execution) does not apply to them")
    return RunSettings(
        profile=profile,
        model=DEFAULT_CONFIG.replace(**overrides),
        variant=get("variant"),
        dataset=get("dataset"),
        imdb_path=get("imdb_path"),
        device=get("device"),
        threads=get("threads") or usable_cpus(),
        seed=DEFAULT_SEED if seed is None else seed,
        train_samples=get("train_samples") or profile.train_samples,
        test_samples=get("test_samples") or profile.test_samples,
        results_dir=results_dir(get("results_dir")),
        seeds=tuple(seeds or ()),
        rounds=get("rounds") or "profile",
        strict_gpu=get("strict_gpu") == "yes",
        strict_cpu=get("strict_cpu") == "yes",
        explain=get("explain") == "yes",
        layout=layout,
    )
