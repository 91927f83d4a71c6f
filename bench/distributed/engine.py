"""The data-parallel front: what every engine shares, and the engine a backend's adapter names.

The backend-agnostic half of Keras's split (``keras/src/distribution/distribution_lib.py`` over
``keras/src/backend/<name>/distribution_lib.py``): this module imports no framework. Each
backend's primitives live in ``bench/distributed/<framework>.py``, a subclass of ``DataParallel``
named by the adapter (``Adapter.distributed_module``) and imported only by ``engine_for``:

* JAX: ``keras.distribution.DataParallel`` over a ``DeviceMesh`` (``--devices``), or over N
  processes joined by ``keras.distribution.initialize`` (``--processes``);
* TensorFlow: ``tf.distribute.MirroredStrategy`` (``--devices``) or ``MultiWorkerMirroredStrategy``
  from ``TF_CONFIG`` (``--processes``);
* PyTorch: ``DistributedDataParallel`` around the Keras model (``--processes`` only: Keras 3.15 has
  no one-process multi-device engine for torch, and its adapter says so).

Every rank runs the same benchmarks in lockstep; rank 0 writes the result file with every rank's
step times (gathered with the engine's own collective). A step benchmark records the slowest
replica's step time (per step, the longest of the ranks' times; then the median), global
samples/s, a single-device reference timed in the same process (rank 0) at the batch one replica
would get alone (weak: the per-replica batch; strong: the global batch), and the scaling
efficiency: throughput at N over N times throughput at 1. Accuracy runs go through
``training.fit_epoch`` like one device: the engine supplies the global batch, this process's rows
and the epoch's steps (``fit``), nothing else.

N devices on one CPU are simulated (host-platform devices, logical CPUs, processes sharing cores):
the record says so, with why, and reports and ``compare`` keep them apart from real devices.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from bench import backends, timing, training
from bench.backends.base import BackendError
from bench.distributed.layout import ADDRESSES_ENV, RANK_ENV, WORLD_ENV, Layout, RankInfo, check_gpu_count
from bench.fingerprint import usable_cpus
from bench.results import Equivalence, ReplicaLayout, Scaling

EQUIVALENCE_STEPS = 2  # data-parallel steps checked against one device at the start of each step benchmark


class Engine(training.OneDevice):
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

    @property
    def lockstep(self) -> bool:
        return self.processes > 1

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

    def local_rows(self, global_batch: int) -> slice:
        """This process's rows of a global batch (the engine splits them further over its devices)."""
        per = global_batch // self.processes
        return slice(self.rank * per, (self.rank + 1) * per)

    def context(self, batch_size: int) -> dict:
        """Context fields a record of this layout overrides (none on one device)."""
        return {}


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

    # --- per framework (bench/distributed/<framework>.py) --------------------------------------

    def join_processes(self, adapter: Any) -> None:
        """Before the backend starts, in a multi-process run: what the framework needs to find the others."""

    def _start(self, adapter: Any) -> None:
        """Once the backend runs: the devices, the strategy or process group; sets ``device_names``."""
        raise NotImplementedError

    def single_device(self) -> contextlib.AbstractContextManager:
        """Where the single-device reference model is built and stepped."""
        return contextlib.nullcontext()

    def stage(self, x: np.ndarray, y: np.ndarray) -> Any:
        """This process's part of one global batch, on its device(s), before any clock starts."""
        raise NotImplementedError

    def make_step(self, model: Any, staged: list) -> Callable[[], Any]:
        """One data-parallel optimizer step per call over the staged batches; returns when the devices are done."""
        raise NotImplementedError

    def gather(self, values: np.ndarray) -> np.ndarray:
        """Every process's ``values`` (same length on each), in rank order: shape (processes, len)."""
        raise NotImplementedError

    # ``fit`` (training.OneDevice's: Keras's own ``fit``) is overridden where an engine runs its own loop.

    # --- shared -------------------------------------------------------------------------------

    def before_start(self, adapter: Any) -> None:
        if self.layout.devices is not None:
            why = adapter.lacks("supports_devices")
            if why:
                raise BackendError(f"--devices: {why}")
            self.how_simulated = adapter.simulate_devices(self.layout.devices)
        if self.rank_info is not None:
            self.join_processes(adapter)

    def after_start(self, adapter: Any) -> None:
        self.adapter = adapter
        if self.layout.devices is not None and adapter.device.kind == "gpu":
            check_gpu_count(self.layout.devices, adapter.gpu_count(), backend=adapter.name, flag="--devices")
        self._start(adapter)

    @property
    def simulated(self) -> bool:
        return self.adapter is not None and self.adapter.device.kind == "cpu" and self.layout.replicas > 1

    def simulated_why(self) -> str | None:
        if not self.simulated:
            return None
        cores = usable_cpus()
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
        first_step_s = timing.time_call(step)  # every engine's step ends in a device sync
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
        with self.single_device():
            model = self.reference_model()
            step = timing.train_step(model, timing.stage_batches(x, y, batch, staged_batches))
            for _ in range(1 + warmup_rounds):  # the first call compiles
                step()
            return float(np.median(timing.plain_loop(step, max(rounds, 1))))


def own_loop(model: Any, callbacks: list, steps: int, step: Callable[[], Any]) -> None:
    """``steps`` training steps of an engine that cannot use ``fit``, calling ``callbacks`` where ``fit`` does.

    ``step()`` runs one step and returns its loss (the same value on every process). Each loss
    reaches the NaN check and the progress line, and the loop stops at the step where a callback
    sets ``model.stop_training``, as ``fit``'s does.
    """
    import keras

    calls = keras.callbacks.CallbackList(callbacks, model=model, epochs=1, steps=steps, verbose=0)
    model.stop_training = False
    calls.on_train_begin()
    for i in range(steps):
        calls.on_train_batch_begin(i)
        calls.on_train_batch_end(i, {"loss": step()})
        if model.stop_training:
            break
    calls.on_train_end()


def _flat(weights: Sequence) -> np.ndarray:
    return np.concatenate([np.asarray(w, dtype=np.float64).ravel() for w in weights])


def engine_for(adapter: Any, layout: Layout, rank: RankInfo | None, *, model_config: Any = None,
               seed: int = 0) -> Engine:
    """The engine that runs ``layout`` on ``adapter``'s backend (``Engine`` itself on one device).

    The adapter names its engine's module (``distributed_module``), as it names its native
    reference: no caller branches on the backend's name.
    """
    if not layout.distributed:
        return Engine(layout, model_config=model_config, seed=seed)
    primitives = backends.implementation(adapter, "distributed")
    return primitives.DATA_PARALLEL(layout, rank if layout.processes is not None else None,
                                    model_config=model_config, seed=seed)
