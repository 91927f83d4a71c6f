"""Data-parallel layouts through each backend's own engine, and the launcher for N local processes.

Two layouts, named in every benchmark id and result file:

* ``--devices N`` (``-dpN``): one process drives N devices. JAX: ``keras.distribution.DataParallel``
  over a ``DeviceMesh``; TensorFlow: ``tf.distribute.MirroredStrategy``. PyTorch has no such engine
  in Keras 3.15 (``keras.distribution`` is JAX-only): its adapter refuses, naming ``--processes``.
* ``--processes N`` (``-mpN``): N processes, one device each, started by ``launch`` on 127.0.0.1.
  JAX: ``keras.distribution.initialize`` (jax.distributed; gloo CPU collectives); TensorFlow:
  ``MultiWorkerMirroredStrategy`` from ``TF_CONFIG`` (Keras 3.15's own train function fails there,
  keras-team/keras#20585, so the step is ``model.train_step`` under ``strategy.run``); PyTorch:
  ``DistributedDataParallel`` around the Keras model with a custom loop over Keras's own loss and
  optimizer (keras.io's "distributed training with PyTorch" guide), over torch.distributed (gloo on
  CPU, NCCL on GPU). Every rank runs the same benchmarks in lockstep; rank 0 writes the result file
  with every rank's step times (gathered with the engine's own collective).

``--scaling weak`` keeps --batch-size per replica (the global batch grows with N); ``strong`` keeps it
global. A step benchmark records the slowest replica's step time (per step, the longest of the
ranks' times; then the median), global samples/s, a single-device reference timed in the same
process (rank 0) at the batch one replica would get alone (weak: the per-replica batch; strong: the
global batch), and the scaling efficiency: throughput at N over N times throughput at 1.

N devices on one CPU are simulated (host-platform devices, logical CPUs, processes sharing cores):
the record says so, with why, and reports and ``compare`` keep them apart from real devices.

The engine classes import their framework inside their methods; which one runs is the adapter's
``parallel_engine`` (a key of ``ENGINES``), so no caller branches on the backend's name.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import itertools
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np

from bench.backends.base import BackendError
from bench.results import Equivalence, ReplicaLayout, Scaling, layout_name

SCALINGS = ("weak", "strong")
MAX_REPLICAS = 64  # a typo (--processes 200) should fail at once, not fork 200 interpreters

# What the launcher tells each process (a manual multi-host launch sets the same; see README).
RANK_ENV = "KERASBENCH_RANK"
WORLD_ENV = "KERASBENCH_WORLD"
LOCAL_RANK_ENV = "KERASBENCH_LOCAL_RANK"
ADDRESSES_ENV = "KERASBENCH_ADDRESSES"  # host:port of every process in rank order; the first coordinates
LAUNCHER_ENV = "KERASBENCH_LAUNCHER"  # the launcher's pid: a rank ends itself when its launcher dies

GRACE_S = 5.0  # how long a stopped rank gets to save its results after SIGTERM, before SIGKILL
FINISH_S = 120.0  # how long the other ranks may take to exit after one finished cleanly
POLL_S = 0.1
COLLECTIVE_TIMEOUT_S = 600  # torch.distributed: a collective waiting longer than this fails the rank
EQUIVALENCE_STEPS = 2  # data-parallel steps checked against one device at the start of each step benchmark


# -------------------------------------------------------------------------------------------- layouts

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


def check_device_count(requested: int, available: int, *, kind: str, backend: str, flag: str) -> None:
    """Fail clearly when ``requested`` GPUs are asked of a machine with ``available``; CPU devices are simulated."""
    if kind == "gpu" and requested > available:
        raise BackendError(
            f"{flag} {requested} asks for {requested} GPUs, but the {backend} backend sees {available} on this "
            f"machine. Use {flag} {available} or fewer, or --device cpu to simulate {requested} devices on the CPU "
            "(timings then labelled simulated)."
        )


def visible_gpus(env: Mapping[str, str] | None = None) -> list[str]:
    """GPU ids a process started with ``env`` could use, without starting any backend.

    CUDA_VISIBLE_DEVICES when set (empty or -1: none), else the NVIDIA driver's device files.
    """
    env = os.environ if env is None else env
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is not None:
        ids = [v.strip() for v in value.split(",") if v.strip()]
        return [] if not ids or ids[0].startswith("-") else ids
    try:
        names = os.listdir("/dev")
    except OSError:
        return []
    return sorted((m.group(1) for m in map(re.compile(r"nvidia(\d+)$").match, names) if m), key=int)


# -------------------------------------------------------------------------------------------- launcher

class RankFailed(Exception):
    """A rank of a multi-process run ended badly; the others were stopped."""

    def __init__(self, rank: int, world: int, code: int | None, log: Path | None, stopped: dict[int, str],
                 why: str | None = None) -> None:
        self.rank, self.world, self.code, self.log, self.stopped = rank, world, code, log, stopped
        what = why or f"ended with {exit_text(code)}"
        others = ", ".join(f"rank {r}: {how}" for r, how in sorted(stopped.items())) or "none left"
        text = f"rank {rank} of {world} {what}; the other ranks were stopped ({others})"
        if log is not None:
            text += f". Its output: {log}" + _tail(log)
        super().__init__(text)

    @property
    def returncode(self) -> int:
        """The launcher's exit status: the rank's own when it exited with one, else 1."""
        return self.code if self.code is not None and self.code > 0 else 1


def exit_text(code: int | None) -> str:
    """'exit code 3', 'exit code -9 (killed by SIGKILL)'."""
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"exit code {code} (killed by {signal.Signals(-code).name})"
        except ValueError:
            return f"exit code {code} (killed by signal {-code})"
    return f"exit code {code}"


def _tail(path: Path, lines: int = 8) -> str:
    try:
        last = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return ("\n  " + "\n  ".join(last)) if last else ""


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free on ``host`` now (held open together, so no two are the same)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]


def die_with_launcher() -> None:
    """In a rank, first thing: get SIGTERM when the launcher dies (Linux prctl), so no rank outlives it.

    Called by the rank itself (before it starts threads), not in a pre-exec hook: forking a
    multi-threaded launcher and running code before exec can deadlock.
    """
    launcher = os.environ.get(LAUNCHER_ENV)
    if not launcher:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    if str(os.getppid()) != launcher:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def cpu_share(rank: int, world: int, cpus: Sequence[int]) -> list[int]:
    """The CPUs rank ``rank`` of ``world`` gets on one machine: an equal slice (past one rank per CPU, one shared)."""
    per = len(cpus) // world
    if per == 0:
        return [cpus[rank % len(cpus)]]
    return list(cpus[rank * per:(rank + 1) * per])


def rank_env(rank: int, world: int, addresses: Sequence[str], gpus: Sequence[str] = ()) -> dict[str, str]:
    """The variables that make a process rank ``rank`` of ``world`` (and show it its own GPU, when there are GPUs)."""
    env = {RANK_ENV: str(rank), WORLD_ENV: str(world), LOCAL_RANK_ENV: str(rank), ADDRESSES_ENV: ",".join(addresses),
           LAUNCHER_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[rank]  # one device per process: the engines use "the" GPU
    return env


def launch(command: Sequence[str], world: int, *, log_dir: Path, cwd: str | os.PathLike | None = None,
           env: Mapping[str, str] | None = None, gpus: Sequence[str] = (), split_cpus: bool = False,
           grace_s: float = GRACE_S, finish_s: float = FINISH_S, poll_s: float = POLL_S,
           on_start: Callable[[list[subprocess.Popen]], None] | None = None) -> None:
    """Run ``command`` as ranks 0..world-1 on 127.0.0.1 and wait for all of them; return when all exited 0.

    With ``split_cpus`` each rank may run only on its ``cpu_share`` of this process's CPUs (so N
    simulated devices on one CPU do not all fight for every core; each backend sizes its threads to
    that). Rank 0's output goes to this process's stdout; rank i's to ``log_dir/rank<i>.log``. The first
    rank to end with a non-zero status (or, once one exited 0, a rank still running after
    ``finish_s``) raises ``RankFailed`` naming it, after the others were stopped: SIGTERM (a pytest
    rank then saves what it finished), SIGKILL after ``grace_s``, and every child reaped. Ctrl-C or
    SIGTERM to the launcher stops them the same way. A rank that calls ``die_with_launcher`` also
    gets SIGTERM if the launcher itself is killed.
    """
    if gpus and len(gpus) < world:
        raise BackendError(f"{world} processes need {world} GPUs; {len(gpus)} visible")
    addresses = [f"127.0.0.1:{port}" for port in free_ports(world)]
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []
    logs: list[Path | None] = []
    handles: list[IO] = []
    restore = _terminate_as_interrupt()
    try:
        for rank in range(world):
            log = None if rank == 0 else log_dir / f"rank{rank}.log"
            out = None if log is None else open(log, "w")  # noqa: SIM115 -- closed in the finally below
            if out is not None:
                handles.append(out)
            child_env = {**(os.environ if env is None else env), **rank_env(rank, world, addresses, gpus)}
            procs.append(subprocess.Popen(list(command), cwd=cwd, env=child_env, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=None if out is None else subprocess.STDOUT))
            if split_cpus:  # set from here, at once: the backends size their thread pools much later, at start
                with contextlib.suppress(ProcessLookupError):
                    os.sched_setaffinity(procs[-1].pid, cpu_share(rank, world, sorted(os.sched_getaffinity(0))))
            logs.append(log)
        if on_start is not None:
            on_start(procs)
        failed = _wait(procs, finish_s, poll_s)
        if failed is not None:
            rank, code, why = failed
            raise RankFailed(rank, world, code, logs[rank], stop(procs, grace_s, skip=rank), why)
    finally:
        stop(procs, grace_s)
        for handle in handles:
            handle.close()
        restore()


def _wait(procs: list[subprocess.Popen], finish_s: float, poll_s: float) -> tuple[int, int | None, str | None] | None:
    """None when every process exited 0; else (rank, code, why) of the first that failed or hung."""
    first_done: float | None = None
    while True:
        codes = [p.poll() for p in procs]
        failed = [(rank, code) for rank, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            # Seen in the same poll, a rank killed by a signal is the cause; an exit status, its echo
            # (the others' collectives fail once it is gone).
            rank, code = min(failed, key=lambda f: (f[1] > 0, f[0]))
            return rank, code, None
        if all(code == 0 for code in codes):
            return None
        if any(code == 0 for code in codes):
            first_done = first_done or time.monotonic()
            if time.monotonic() - first_done > finish_s:
                rank = next(r for r, c in enumerate(codes) if c is None)
                return rank, None, f"was still running {finish_s:.0f} s after another rank had finished"
        time.sleep(poll_s)


def stop(procs: Sequence[subprocess.Popen], grace_s: float = GRACE_S, skip: int | None = None) -> dict[int, str]:
    """SIGTERM every running process, SIGKILL those left after ``grace_s``, reap all; how each ended."""
    how: dict[int, str] = {}
    running = [(r, p) for r, p in enumerate(procs) if p.poll() is None]
    for _, p in running:
        with contextlib.suppress(ProcessLookupError):
            p.terminate()
    deadline = time.monotonic() + grace_s
    for rank, p in running:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
            how[rank] = f"stopped by SIGTERM, {exit_text(p.returncode)}"
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            how[rank] = f"did not stop within {grace_s:.0f} s of SIGTERM: SIGKILL"
    for rank, p in enumerate(procs):
        if rank not in how and rank != skip and p.returncode is not None:
            how[rank] = f"had ended, {exit_text(p.returncode)}"
    return how


def _terminate_as_interrupt() -> Callable[[], None]:
    """SIGTERM raises KeyboardInterrupt while the launcher waits (so it stops its ranks); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------------------------- engines

class Engine:
    """One device, no engine: the benchmarks' own paths (bench/timing.py, bench/training.py)."""

    name: ClassVar[str] = "none"
    distributed: ClassVar[bool] = False

    def __init__(self, layout: Layout | None = None, rank: RankInfo | None = None, *, model_config: Any = None,
                 seed: int = 0) -> None:
        self.layout = layout or Layout()
        self.rank_info = rank
        self.model_config = model_config
        self.seed = seed

    @property
    def rank(self) -> int:
        return self.rank_info.rank if self.rank_info else 0

    @property
    def processes(self) -> int:
        return self.rank_info.world if self.rank_info else 1

    def before_start(self, adapter: Any) -> None:
        """Called before the backend starts (``backends.configure``'s hook): simulated devices, process groups."""

    def after_start(self, adapter: Any) -> None:
        """Called once the backend runs and the device is known."""

    def scope(self) -> contextlib.AbstractContextManager:
        """Where the benchmark's model is built."""
        return contextlib.nullcontext()

    def finish(self) -> None:
        """Leave the process group, where there is one."""

    def global_batch(self, batch_size: int) -> int:
        return self.layout.batches(batch_size)[1]

    def context(self, batch_size: int) -> dict:
        """Context fields a record of this layout overrides (none on one device)."""
        return {}

    def fit_epoch(self, model: Any, data: Any, epoch: int, batch_size: int, seed: int, progress: Any = None) -> Any:
        from bench import training

        return training.fit_epoch(model, data, epoch, batch_size, seed, progress)


class DataParallel(Engine):
    """What the three engines share: batches per process, the timed step, the gather, the record."""

    distributed = True
    step_impl: ClassVar[str] = ""  # which function one timed step calls
    collectives: ClassVar[str] = ""  # how processes exchange gradients, on CPU
    local_collectives: ClassVar[str] = ""  # how the devices of one process do

    def __init__(self, layout: Layout, rank: RankInfo | None = None, *, model_config: Any = None,
                 seed: int = 0) -> None:
        super().__init__(layout, rank, model_config=model_config, seed=seed)
        if layout.processes is not None and (rank is None or rank.world != layout.processes):
            raise BackendError(f"--processes {layout.processes} runs through `pytest bench/ --processes "
                               f"{layout.processes}` (the suite launches the ranks), or with {RANK_ENV}/{WORLD_ENV}/"
                               f"{ADDRESSES_ENV} set for each of {layout.processes} processes (see README)")
        self.adapter: Any = None
        self.device_names: list[str] = []
        self.how_simulated = ""  # what the adapter did to get several devices on one CPU

    # --- per engine ---------------------------------------------------------------------------

    def single_device(self) -> contextlib.AbstractContextManager:
        """Where the single-device reference model is built and stepped."""
        return contextlib.nullcontext()

    def stage(self, x: np.ndarray, y: np.ndarray) -> Any:
        """This process's part of one global batch, on its device(s), before any clock starts."""
        raise NotImplementedError

    def make_step(self, model: Any, staged: list) -> Callable[[], Any]:
        """One data-parallel optimizer step per call over the staged batches; returns when the devices are done."""
        raise NotImplementedError

    def epoch(self, model: Any, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
              local_batch: int, callbacks: list) -> dict:
        """One epoch over this process's rows, then validation; loss/accuracy/val_loss/val_accuracy of all ranks."""
        raise NotImplementedError

    def gather(self, values: np.ndarray) -> np.ndarray:
        """Every process's ``values`` (same length on each), in rank order: shape (processes, len)."""
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------------

    def after_start(self, adapter: Any) -> None:
        self.adapter = adapter
        self._start(adapter)

    def _start(self, adapter: Any) -> None:
        raise NotImplementedError

    def check_gpus(self, adapter: Any, flag: str, requested: int) -> None:
        check_device_count(requested, adapter.gpu_count(), kind=adapter.device.kind, backend=adapter.name, flag=flag)

    @property
    def simulated(self) -> bool:
        return self.adapter is not None and self.adapter.device.kind == "cpu" and self.layout.replicas > 1

    def simulated_why(self) -> str | None:
        if not self.simulated:
            return None
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        n = self.layout.replicas
        if self.layout.mode == "devices":
            return (f"{n} {self.how_simulated} in one process share this machine's {cores} CPU cores: the timings "
                    "show the engine's work and contention, not the speed of N devices")
        return (f"{n} processes on one CPU (this one may use {cores} of its cores) exchange gradients over "
                f"{self.collectives} on 127.0.0.1: the timings show the engine's work and contention, not the speed "
                "of N devices")

    def _collectives(self) -> str:
        if self.layout.mode == "devices":
            return self.local_collectives
        return self.collectives if self.adapter.device.kind == "cpu" else "the engine's GPU collectives (NCCL)"

    def local_rows(self, global_batch: int) -> slice:
        """This process's rows of a global batch (the engine splits them further over its devices)."""
        per = global_batch // self.processes
        return slice(self.rank * per, (self.rank + 1) * per)

    def describe(self, batch_size: int) -> dict:
        """The Context.layout of a benchmark at --batch-size ``batch_size``."""
        per_replica, global_batch = self.layout.batches(batch_size)
        return {
            "engine": self.name, "mode": self.layout.mode, "replicas": self.layout.replicas,
            "processes": self.processes, "devices_per_process": self.layout.devices or 1,
            "scaling": self.layout.scaling, "per_replica_batch": per_replica, "global_batch": global_batch,
            "simulated": self.simulated, "simulated_why": self.simulated_why(), "devices": list(self.device_names),
            "step": self.step_impl, "collectives": self._collectives(),
            "rank_recording": self.rank, "host": socket.gethostname(),
        }

    def context(self, batch_size: int) -> dict:
        return {"layout": ReplicaLayout(**self.describe(batch_size)), "batch_size": self.global_batch(batch_size)}

    def bench_train_step(self, benchmark: Any, model: Any, x: np.ndarray, y: np.ndarray, shape: tuple[int, int], *,
                         rounds: int, warmup_rounds: int, staged_batches: int, adaptive: Any = None) -> Any:
        """Time the data-parallel train step; its StepMetrics with the slowest replica, samples/s and efficiency.

        ``shape`` is (--batch-size, maxlen); the scaling decides the global batch. Every rank runs
        the same calls (fixed rounds with several processes: adaptive rounds would stop each rank on
        its own clock and leave the others waiting in a collective).
        """
        from bench import timing

        batch_size, maxlen = shape
        per_replica, global_batch = self.layout.batches(batch_size)
        x = x[:, -maxlen:]
        count = min(staged_batches, len(x) // global_batch)
        if count < 1:
            raise ValueError(f"global batch {global_batch} is larger than the {len(x)} samples available")
        rows = self.local_rows(global_batch)
        staged = [self.stage(x[i * global_batch:(i + 1) * global_batch][rows],
                             y[i * global_batch:(i + 1) * global_batch][rows].astype("float32")) for i in range(count)]
        step = self.make_step(model, staged)
        # The first steps double as the check that N replicas train the model one device would: the
        # first (trace/compile) is timed here as measure_step would time it.
        start = time.perf_counter()
        step()
        first_step_s = time.perf_counter() - start
        for _ in range(EQUIVALENCE_STEPS - 1):
            step()
        weights = _flat(model.get_weights())
        checksums = self.gather(np.array([np.sum(weights), np.sum(weights * weights)]))
        difference = None
        if self.rank == 0:  # the others wait in measure_step's first step
            difference = float(np.max(np.abs(weights - self.one_device_weights(x, y, global_batch, count))))
        metrics = timing.measure_step(benchmark, step, rounds=rounds, warmup_rounds=warmup_rounds,
                                      batch_size=global_batch, staged_batches=count,
                                      adaptive=adaptive if self.processes == 1 else None)
        own = np.asarray(benchmark.stats.stats.data, dtype=float)
        reference_batch = per_replica if self.layout.scaling == "weak" else global_batch
        reference = None
        if self.rank == 0:  # the others wait in the gather below
            reference = self.reference_step_s(x, y, reference_batch, rounds, warmup_rounds, staged_batches)
        every = self.gather(own)
        slowest = float(np.median(every.max(axis=0)))  # per step the last replica to finish, then the median
        samples = global_batch / slowest
        efficiency = None if reference is None else samples / (self.layout.replicas * reference_batch / reference)
        return dataclasses.replace(
            metrics, first_step_s=first_step_s, samples_per_s=samples,
            scaling=Scaling(slowest, [float(np.median(r)) for r in every], reference_batch, reference, efficiency),
            equivalence=Equivalence(EQUIVALENCE_STEPS, bool(np.all(checksums == checksums[0])), difference),
        )

    def one_device_weights(self, x: np.ndarray, y: np.ndarray, global_batch: int, count: int) -> np.ndarray:
        """The weights after EQUIVALENCE_STEPS single-device steps on the global batches the replicas shared."""
        with self.single_device():
            model = self.reference_model()
            for i in range(EQUIVALENCE_STEPS):
                rows = slice(i % count * global_batch, (i % count + 1) * global_batch)
                model.train_on_batch(x[rows], y[rows].astype("float32"))
            return _flat(model.get_weights())

    def reference_model(self) -> Any:
        """The benchmark's model on one device, with the same seeded weights."""
        import keras

        from model import build_model, initialize_weights

        keras.utils.set_random_seed(self.seed)
        built = build_model(self.model_config)
        initialize_weights(built, self.seed)
        return built

    def reference_step_s(self, x: np.ndarray, y: np.ndarray, batch: int, rounds: int, warmup_rounds: int,
                         staged_batches: int) -> float:
        """Median single-device step at ``batch``, timed in this process: the "throughput at 1" of efficiency."""
        from bench import timing

        with self.single_device():
            model = self.reference_model()
            step = timing.train_step(model, timing.stage_batches(x, y, batch, staged_batches))
            for _ in range(1 + warmup_rounds):  # the first call compiles
                step()
            return float(np.median(timing.plain_loop(step, max(rounds, 1))))

    def fit_epoch(self, model: Any, data: Any, epoch: int, batch_size: int, seed: int, progress: Any = None) -> Any:
        """training.fit_epoch through the engine: the same seeded order of global batches, this process's rows."""
        from bench import training

        _, global_batch = self.layout.batches(batch_size)
        n_train = len(data.y_train) // global_batch * global_batch
        n_test = len(data.y_test) // global_batch * global_batch
        if n_train < global_batch or n_test < global_batch:
            raise ValueError(f"global batch {global_batch} is larger than the data ({len(data.y_train)} train, "
                             f"{len(data.y_test)} validation reviews)")
        order = np.random.default_rng(seed + epoch).permutation(len(data.y_train))[:n_train]
        rows = self.local_rows(global_batch)

        def local(a: np.ndarray, n: int) -> np.ndarray:
            return a[:n].reshape(n // global_batch, global_batch, *a.shape[1:])[:, rows].reshape(-1, *a.shape[1:])

        train = local(data.x_train[order], n_train), local(data.y_train[order].astype("float32"), n_train)
        val = local(data.x_test, n_test), local(data.y_test.astype("float32"), n_test)
        callbacks = [progress.callback(epoch)] if progress is not None else []
        start = time.perf_counter()
        logs = self.epoch(model, train, val, global_batch // self.processes, callbacks)
        self.adapter.sync()
        seconds = time.perf_counter() - start
        if not math.isfinite(logs["loss"]):
            raise training.NonFiniteLoss(epoch, n_train // global_batch, logs["loss"])
        return training.EpochRecord(epoch, seconds, logs["loss"], logs["accuracy"], logs["val_loss"],
                                    logs["val_accuracy"])


def _flat(weights: Sequence) -> np.ndarray:
    return np.concatenate([np.asarray(w, dtype=np.float64).ravel() for w in weights])


def _last_logs(history: Any) -> dict:
    h = {key: float(values[-1]) for key, values in history.history.items()}
    return {"loss": h["loss"], "accuracy": h["accuracy"], "val_loss": h["val_loss"], "val_accuracy": h["val_accuracy"]}


class JaxDataParallel(DataParallel):
    """``keras.distribution.DataParallel``: one process over N devices, or N processes via jax.distributed."""

    name = "keras.distribution.DataParallel"
    step_impl = "model.train_on_batch (Keras's compiled train_function), batch sharded over the DeviceMesh"
    collectives = "XLA's gloo CPU collectives"
    local_collectives = "XLA's all-reduce across the devices of one process"

    def before_start(self, adapter: Any) -> None:
        if self.layout.devices is not None:
            self.how_simulated = adapter.simulate_devices(self.layout.devices)
        if self.rank_info is not None:
            import jax
            import keras

            # XLA:CPU has no cross-process collectives unless told which to use.
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
            keras.distribution.initialize(job_addresses=self.rank_info.coordinator, num_processes=self.processes,
                                          process_id=self.rank)

    def _start(self, adapter: Any) -> None:
        import jax
        import keras

        devices = jax.devices()
        if self.layout.devices is not None:
            if adapter.device.kind == "gpu":
                self.check_gpus(adapter, "--devices", self.layout.devices)
            devices = [d for d in devices if d.platform == devices[0].platform][:self.layout.devices]
            if len(devices) < self.layout.devices:
                raise BackendError(f"--devices {self.layout.devices}: JAX offers {len(devices)} devices")
        self.device_names = [str(d) for d in devices]
        # Several processes each feed their own rows (auto_shard_dataset=False), as jax.distributed expects.
        self.distribution = keras.distribution.DataParallel(devices=devices,
                                                            auto_shard_dataset=self.rank_info is None)
        keras.distribution.set_distribution(self.distribution)

    @contextlib.contextmanager
    def single_device(self) -> Iterator[None]:
        import jax
        import keras

        keras.distribution.set_distribution(None)
        try:
            with jax.default_device(jax.local_devices()[0]):
                yield
        finally:
            keras.distribution.set_distribution(self.distribution)

    def stage(self, x: np.ndarray, y: np.ndarray) -> Any:
        if self.rank_info is not None:
            return x, y  # this process's rows; train_on_batch assembles the global batch from every process's
        import keras

        return tuple(keras.distribution.distribute_tensor(a, self.distribution.get_data_layout(a.shape))
                     for a in (x, y))

    def make_step(self, model: Any, staged: list) -> Callable[[], Any]:
        from bench import timing

        return timing.train_step(model, staged)

    def epoch(self, model: Any, train: tuple, val: tuple, local_batch: int, callbacks: list) -> dict:
        history = model.fit(*train, batch_size=local_batch, epochs=1, shuffle=False, verbose=0, validation_data=val,
                            callbacks=callbacks)
        return _last_logs(history)

    def gather(self, values: np.ndarray) -> np.ndarray:
        if self.rank_info is None:
            return np.asarray(values, dtype=float)[None]
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(np.asarray(values, dtype=np.float32)), dtype=float)


class TensorFlowDataParallel(DataParallel):
    """``tf.distribute``: MirroredStrategy over N devices, or MultiWorkerMirroredStrategy over N processes."""

    name = "tf.distribute.MirroredStrategy"
    collectives = "TF's RING collectives (gRPC)"
    local_collectives = "MirroredStrategy's cross-device ops (one process)"
    # Keras 3.15's train_function reduces the step's logs with strategy.reduce(..., axis=0), which fails
    # on scalars under MultiWorkerMirroredStrategy (keras-team/keras#20585, tensorflow/tensorflow#72388).
    WORKER_STEP_WHY = ("Keras's own train_function fails under MultiWorkerMirroredStrategy in Keras 3.15 "
                       "(keras-team/keras#20585): model.train_step under strategy.run instead")

    def before_start(self, adapter: Any) -> None:
        if self.layout.devices is not None:
            self.how_simulated = adapter.simulate_devices(self.layout.devices)
        if self.rank_info is not None:
            if len(self.rank_info.addresses) != self.processes:
                raise BackendError(f"TF_CONFIG needs every worker's address: set {ADDRESSES_ENV} to the host:port of "
                                   f"each of the {self.processes} processes, in rank order")
            os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": list(self.rank_info.addresses)},
                                                  "task": {"type": "worker", "index": self.rank}})

    def _start(self, adapter: Any) -> None:
        import tensorflow as tf

        gpu = adapter.device.kind == "gpu"
        self._prepared: set[int] = set()
        if self.rank_info is not None:
            impl = tf.distribute.experimental.CommunicationImplementation
            options = tf.distribute.experimental.CommunicationOptions(implementation=impl.NCCL if gpu else impl.RING)
            self.strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
            self.name = "tf.distribute.MultiWorkerMirroredStrategy"
            self.step_impl = "model.train_step under strategy.run in a tf.function: " + self.WORKER_STEP_WHY
            self.device_names = [str(d) for d in self.strategy.extended.worker_devices]
            return
        n = self.layout.devices
        if gpu:
            self.check_gpus(adapter, "--devices", n)
            names = [d.name for d in tf.config.list_logical_devices("GPU")][:n]
        else:
            names = [d.name for d in tf.config.list_logical_devices("CPU")][:n]
        if len(names) < n:
            raise BackendError(f"--devices {n}: TensorFlow offers {len(names)} devices ({names})")
        self.strategy = tf.distribute.MirroredStrategy(names)
        self.step_impl = ("model.train_function (Keras's compiled step, as fit calls it) on a distributed "
                          "tf.data iterator")
        self.device_names = names

    def scope(self) -> contextlib.AbstractContextManager:
        return self.strategy.scope()

    def _prepare(self, model: Any, x: np.ndarray, y: np.ndarray) -> None:
        """Create the model's loss, metric and optimizer state under the strategy, outside any tf.function.

        What Keras's private ``_symbolic_build`` does before ``fit``, through public calls: a
        distributed variable cannot be created inside the step's tf.function.
        """
        if id(model) in self._prepared:
            return
        import tensorflow as tf

        with self.strategy.scope():
            xs, ys = tf.constant(x[:1]), tf.constant(y[:1])
            y_pred = model(xs)
            model.compute_loss(x=xs, y=ys, y_pred=y_pred)
            model.compute_metrics(xs, ys, y_pred, sample_weight=None)
            model.optimizer.build(model.trainable_variables)
        model.reset_metrics()
        self._prepared.add(id(model))

    def _distributed(self, x: np.ndarray, y: np.ndarray, repeat: bool) -> Any:
        """This process's rows as per-replica batches, one per local replica and step, through the strategy."""
        import tensorflow as tf

        per_replica = self._per_replica

        def dataset(context: Any) -> Any:
            ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(per_replica, drop_remainder=True)
            return ds.repeat() if repeat else ds

        return self.strategy.distribute_datasets_from_function(dataset)

    def _function(self, model: Any, train: bool = True) -> Callable:
        """One step per call on a distributed iterator: Keras's train_function where it works, else our own."""
        if self.rank_info is None and train:
            model.make_train_function()
            return model.train_function
        import tensorflow as tf

        strategy = self.strategy
        step = model.train_step if train else model.test_step

        @tf.function
        def one_step(iterator: Any) -> dict:
            logs = strategy.run(step, args=(next(iterator),))
            return {key: strategy.reduce("MEAN", value, axis=None) for key, value in logs.items()}

        return one_step

    def make_step(self, model: Any, staged: list) -> Callable[[], Any]:
        x = np.concatenate([b[0] for b in staged])
        y = np.concatenate([b[1] for b in staged])
        self._per_replica = len(staged[0][0]) // len(self.device_names)
        self._prepare(model, x, y)
        iterator = iter(self._distributed(x, y, repeat=True))
        function = self._function(model)

        def step() -> dict:
            # Reading the logs back waits for the step's ops (TF runs them before .numpy() returns).
            return {key: float(value) for key, value in function(iterator).items()}

        return step

    def stage(self, x: np.ndarray, y: np.ndarray) -> Any:
        return x, y  # tf.data feeds the replicas (as fit does); the arrays stay on the host until then

    def epoch(self, model: Any, train: tuple, val: tuple, local_batch: int, callbacks: list) -> dict:
        self._per_replica = local_batch // len(self.device_names)
        if self.rank_info is None:
            history = model.fit(*train, batch_size=local_batch, epochs=1, shuffle=False, verbose=0,
                                validation_data=val, callbacks=callbacks)
            return _last_logs(history)
        self._prepare(model, *train)
        logs: dict[str, dict] = {}
        for name, (x, y), is_train in (("train", train, True), ("val", val, False)):
            model.reset_metrics()  # Keras's metrics then hold the epoch's running means, as in fit
            function, iterator = self._function(model, is_train), iter(self._distributed(x, y, repeat=False))
            for _ in range(len(x) // local_batch):
                logs[name] = function(iterator)
        train_logs, val_logs = ({k: float(v) for k, v in logs[n].items()} for n in ("train", "val"))
        return {"loss": train_logs["loss"], "accuracy": train_logs["accuracy"], "val_loss": val_logs["loss"],
                "val_accuracy": val_logs["accuracy"]}

    def describe(self, batch_size: int) -> dict:
        described = super().describe(batch_size)
        if self.rank_info is not None:  # why the step is our own, observed once per run (every rank calls this)
            if not hasattr(self, "_keras_status"):
                self._keras_status = self.keras_train_function_status()
            described["keras_train_function"] = self._keras_status
        return described

    def keras_train_function_status(self) -> str:
        """Whether Keras's own train_function runs under this strategy: "works", or "fails: <error>".

        The multi-worker step is our own only because Keras 3.15's fails there; a test calls this to
        notice the Keras release that fixes it. On a throwaway model (a working function trains it).
        """
        import tensorflow as tf

        with self.strategy.scope():
            model = self.reference_model()
        replicas = len(self.device_names)
        x = np.ones((2 * replicas, self.model_config.maxlen), dtype="int32")
        y = np.ones(2 * replicas, dtype="float32")
        self._prepare(model, x, y)
        dataset = self.strategy.distribute_datasets_from_function(
            lambda context: tf.data.Dataset.from_tensor_slices((x, y)).batch(2))
        model.make_train_function()
        try:
            model.train_function(iter(dataset))
        except (ValueError, TypeError) as exc:
            return f"fails: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        return "works"

    def gather(self, values: np.ndarray) -> np.ndarray:
        if self.rank_info is None:
            return np.asarray(values, dtype=float)[None]
        import tensorflow as tf

        row = np.asarray(values, dtype=np.float64)[None]
        local = self.strategy.experimental_distribute_values_from_function(lambda context: tf.constant(row))
        return self.strategy.gather(local, axis=0).numpy()  # one row per replica: one replica per process


class TorchDistributedDataParallel(DataParallel):
    """``torch.nn.parallel.DistributedDataParallel`` around the Keras model: one process per device."""

    name = "torch.nn.parallel.DistributedDataParallel"
    step_impl = ("DDP forward, model.compute_loss, backward (DDP all-reduces the gradients), "
                 "model.optimizer.apply: Keras's torch train_step with the DDP wrapper")
    collectives = "torch.distributed gloo"

    def before_start(self, adapter: Any) -> None:
        if self.layout.devices is not None:
            adapter.simulate_devices(self.layout.devices)  # the torch adapter says why there is no such engine

    def _start(self, adapter: Any) -> None:
        import torch
        import torch.distributed as dist

        gpu = adapter.device.kind == "gpu"
        if gpu:
            # The launcher shows each process its own GPU; under torchrun, LOCAL_RANK picks it.
            torch.cuda.set_device(self.rank_info.local_rank % max(torch.cuda.device_count(), 1))
        init = "env://" if self.rank_info.source == "torchrun" else f"tcp://{self.rank_info.coordinator}"
        dist.init_process_group("nccl" if gpu else "gloo", init_method=init, rank=self.rank,
                                world_size=self.processes, timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))
        self.device_names = [f"{'cuda:' + str(torch.cuda.current_device()) if gpu else 'cpu'} (rank {self.rank})"]
        self._wrapped: Any = None

    def finish(self) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()

    def _ddp(self, model: Any) -> Any:
        if self._wrapped is None or self._wrapped.module is not model:
            import torch

            model.optimizer.build(model.trainable_variables)
            gpu = self.adapter.device.kind == "gpu"
            # DDP broadcasts rank 0's weights and hooks every trainable parameter's gradient into an all-reduce.
            self._wrapped = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[torch.cuda.current_device()] if gpu else None)
        return self._wrapped

    def _train_step(self, model: Any, x: Any, y: Any) -> tuple[Any, Any]:
        """Keras's torch train_step (keras/src/backend/torch/trainer.py), with the forward pass through DDP."""
        import torch

        ddp = self._ddp(model)
        y_pred = ddp(x, training=True)
        model.zero_grad()
        loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
        model.optimizer.scale_loss(loss).backward()
        weights = model.trainable_weights[:]
        with torch.no_grad():
            model.optimizer.apply([v.value.grad for v in weights], weights)
        return loss, y_pred

    def stage(self, x: np.ndarray, y: np.ndarray) -> Any:
        return self.adapter.to_device(x), self.adapter.to_device(y)

    def make_step(self, model: Any, staged: list) -> Callable[[], Any]:
        cycle = itertools.cycle(staged)

        def step() -> float:
            x, y = next(cycle)
            loss, _ = self._train_step(model, x, y)
            return float(loss.detach())  # reading the loss back waits for the device

        return step

    def epoch(self, model: Any, train: tuple, val: tuple, local_batch: int, callbacks: list) -> dict:
        import torch

        model.reset_metrics()
        losses, metrics = [], {}
        for i in range(len(train[0]) // local_batch):
            x, y = (self.adapter.to_device(a[i * local_batch:(i + 1) * local_batch]) for a in train)
            loss, y_pred = self._train_step(model, x, y)
            losses.append(float(loss.detach()))
            with torch.no_grad():
                metrics = model.compute_metrics(x, y, y_pred.detach(), sample_weight=None)
        validated = model.evaluate(*val, batch_size=local_batch, verbose=0, return_dict=True)
        # Equal rows on every rank: the mean over ranks is the mean over the global data.
        mean = self.gather(np.array([np.mean(losses), float(metrics["accuracy"]), validated["loss"],
                                     validated["accuracy"]])).mean(axis=0)
        return dict(zip(("loss", "accuracy", "val_loss", "val_accuracy"), map(float, mean)))

    def gather(self, values: np.ndarray) -> np.ndarray:
        import torch.distributed as dist

        out: list[Any] = [None] * self.processes
        dist.all_gather_object(out, np.asarray(values, dtype=float).tolist())
        return np.asarray(out, dtype=float)


# Which engine runs is the adapter's ``parallel_engine``: a key here, not a branch on the backend's name.
ENGINES: dict[str, type[DataParallel]] = {
    "keras.distribution": JaxDataParallel,
    "tf.distribute": TensorFlowDataParallel,
    "torch.distributed": TorchDistributedDataParallel,
}


def engine_for(adapter: Any, layout: Layout, rank: RankInfo | None, *, model_config: Any = None,
               seed: int = 0) -> Engine:
    """The engine that runs ``layout`` on ``adapter``'s backend (``Engine`` itself on one device)."""
    if not layout.distributed:
        return Engine(layout, model_config=model_config, seed=seed)
    return ENGINES[adapter.parallel_engine](layout, rank if layout.processes is not None else None,
                                            model_config=model_config, seed=seed)


def run_ranks(args: Sequence[str], world: int, *, cwd: str | os.PathLike, device: str, log_dir: Path,
              threads_given: bool = False) -> None:
    """``python -m pytest ARGS`` as ``world`` ranks (``pytest bench/ --processes N``); RankFailed if one fails.

    On GPU each rank gets its own (CUDA_VISIBLE_DEVICES); asking for more processes than GPUs
    fails here, before anything starts. With no GPU the ranks share the CPU: unless --threads was
    given, each gets an equal slice of the CPUs and as many threads (``cpu_share``).
    """
    gpus = visible_gpus() if device != "cpu" else []
    if device == "gpu" or gpus:
        check_device_count(world, len(gpus), kind="gpu", backend="this", flag="--processes")
    args = list(args)
    split = not gpus and not threads_given
    if split:
        args += ["--threads", str(len(cpu_share(0, world, sorted(os.sched_getaffinity(0)))))]
    launch([sys.executable, "-m", "pytest", *args], world, cwd=cwd, log_dir=log_dir, gpus=gpus[:world],
           split_cpus=split)
