"""What a data-parallel run is: its layout, the names it gets, and which rank a process is.

Two layouts, named in every benchmark id and result file:

* ``--devices N`` (``-dpN``): one process drives N devices.
* ``--processes N`` (``-mpN``): N processes, one device each, started by ``launcher.launch`` on
  127.0.0.1 (or by hand, or by torchrun, with the variables below).

``--scaling weak`` keeps --batch-size per replica (the global batch grows with N); ``strong`` keeps it
global. Values only: this module imports no framework and nothing of how runs are timed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from bench.backends.base import BackendError
from bench.results import layout_name

SCALINGS = ("weak", "strong")
MAX_REPLICAS = 64  # a typo (--processes 200) should fail at once, not fork 200 interpreters

# What the launcher tells each process (a manual multi-host launch sets the same; see README).
RANK_ENV = "KERASBENCH_RANK"
WORLD_ENV = "KERASBENCH_WORLD"
LOCAL_RANK_ENV = "KERASBENCH_LOCAL_RANK"
ADDRESSES_ENV = "KERASBENCH_ADDRESSES"  # host:port of every process in rank order; the first coordinates
LAUNCHER_ENV = "KERASBENCH_LAUNCHER"  # the launcher's pid: a rank ends itself when its launcher dies


@dataclass(frozen=True)
class Layout:
    """How many replicas, and how they are laid out: N devices in one process, or N processes."""

    devices: int | None = None  # --devices: devices driven by one process
    processes: int | None = None  # --processes: processes, one device each
    scaling: str = "weak"  # --scaling: weak keeps the per-replica batch, strong the global batch

    def __post_init__(self) -> None:
        if self.devices is not None and self.processes is not None:
            raise ValueError("give --devices N (one process, N devices) or --processes N (N processes, one device "
                             "each), not both")
        if self.scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {self.scaling!r}; choose one of {', '.join(SCALINGS)}")
        for flag, value in (("--devices", self.devices), ("--processes", self.processes)):
            if value is not None and not 1 <= value <= MAX_REPLICAS:
                raise ValueError(f"{flag} {value}: use 1 to {MAX_REPLICAS}")

    @property
    def distributed(self) -> bool:
        """Whether the benchmarks run through a data-parallel engine (even at N = 1)."""
        return self.devices is not None or self.processes is not None

    @property
    def replicas(self) -> int:
        return (self.devices or 1) * (self.processes or 1)

    @property
    def mode(self) -> str:
        return "devices" if self.devices is not None else "processes" if self.processes is not None else "single"

    @property
    def suffix(self) -> str:
        """What benchmark ids and file names get: "", "-dp4", "-mp2", "-dp4-strong"."""
        if not self.distributed:
            return ""
        return f"-{layout_name(self.mode, self.replicas)}" + ("-strong" if self.scaling == "strong" else "")

    def batches(self, batch_size: int) -> tuple[int, int]:
        """(per-replica batch, global batch) for --batch-size ``batch_size`` under this scaling."""
        n = self.replicas
        if self.scaling == "weak" or not self.distributed:
            return batch_size, batch_size * n
        if batch_size % n:
            raise ValueError(f"--scaling strong splits the global batch {batch_size} over {n} replicas: choose a "
                             f"--batch-size divisible by {n}")
        return batch_size // n, batch_size

    def as_dict(self) -> dict:
        return {"devices": self.devices, "processes": self.processes, "scaling": self.scaling}


@dataclass(frozen=True)
class RankInfo:
    """Which process of a multi-process run this is, and where the others are."""

    rank: int
    world: int
    local_rank: int
    addresses: tuple[str, ...]  # host:port; the first is the coordinator
    source: str = "kerasbench"  # or "torchrun", whose agent already holds the rendezvous store

    @property
    def coordinator(self) -> str:
        return self.addresses[0]


def rank_from_env(env: Mapping[str, str] | None = None) -> RankInfo | None:
    """This process's rank from the launcher's variables (or torchrun's), or None outside a multi-process run."""
    env = os.environ if env is None else env
    try:
        if RANK_ENV in env:
            rank, world = int(env[RANK_ENV]), int(env[WORLD_ENV])
            info = RankInfo(rank, world, int(env.get(LOCAL_RANK_ENV, rank)),
                            tuple(a.strip() for a in env.get(ADDRESSES_ENV, "").split(",") if a.strip()))
        elif "RANK" in env and "WORLD_SIZE" in env and "MASTER_ADDR" in env:
            info = RankInfo(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)),
                            (f"{env['MASTER_ADDR']}:{env.get('MASTER_PORT', '29500')}",), source="torchrun")
        else:
            return None
    except (KeyError, ValueError) as exc:
        raise BackendError(f"malformed multi-process variables ({exc}): {RANK_ENV}, {WORLD_ENV} and {ADDRESSES_ENV} "
                           "must all be set, as numbers and host:port") from None
    if not 0 <= info.rank < info.world or not info.addresses:
        raise BackendError(f"rank {info.rank} of {info.world} with addresses {info.addresses!r} is not a valid "
                           "process of a multi-process run")
    return info


def check_gpu_count(requested: int, available: int, *, backend: str, flag: str) -> None:
    """Fail clearly when ``requested`` GPUs are asked of a machine with ``available`` (CPU devices are simulated)."""
    if requested > available:
        raise BackendError(
            f"{flag} {requested} asks for {requested} GPUs, but the {backend} backend sees {available} on this "
            f"machine. Use {flag} {available} or fewer, or --device cpu to simulate {requested} devices on the CPU "
            "(timings then labelled simulated)."
        )
