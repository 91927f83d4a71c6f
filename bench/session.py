"""One pytest process's kerasbench run: its settings, backend, engine, records and result file.

Like pytest-benchmark's ``session.py``: bench/plugin.py holds the pytest hooks and options and
calls into this module, which holds the run's state and does the work. Order matters in
``Session.start``: the backend is checked and its environment prepared before the first import of
Keras, which fixes the backend and starts it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import backends, cache, ceilings, contention, energy, fingerprint, gpu, packages, results, roofline, work
from bench.data import Dataset
from bench.distributed import launcher
from bench.distributed.engine import Engine, engine_for
from bench.distributed.layout import rank_from_env
from bench.settings import RunSettings
from bench.variants import check_supported, runtime_switches, same_as

INTERRUPTED = 2  # pytest.ExitCode.INTERRUPTED: this module does not import pytest


class RanksEnded(Exception):
    """This process launched --processes ranks and they have ended: the run ends with ``returncode``."""

    def __init__(self, message: str, returncode: int) -> None:
        super().__init__(message)
        self.returncode = returncode


class GpuNeighbours(Exception):
    """--strict-gpu and another process uses the GPU this run measures on."""


@dataclass
class Session:
    """What one pytest process of kerasbench knows about its run."""

    settings: RunSettings
    adapter: backends.Adapter
    engine: Engine  # --devices/--processes: its data-parallel engine; a plain Engine on one device
    started: datetime
    gpu_watch: gpu.GpuWatch | None = None  # NVML's view of the GPU this run measures on (GPU runs only)
    gpu_problem: str | None = None  # why the GPU may be shared, to warn about
    variant_note: str | None = None  # why the variant is the same program as another here, to warn about
    path: Path | None = None  # the result file, named when the first benchmark finishes
    machine_info: dict | None = None  # pytest-benchmark's, computed once
    commit_info: dict | None = None
    unrecorded: list[str] = field(default_factory=list)
    terminated: bool = False  # a SIGTERM arrived
    # The LSTM kernel cross-check per (batch size, maxlen, spy label): the program is the same for each.
    kernel_checks: dict = field(default_factory=dict)
    # The backend's count of a step per (kind, batch size, maxlen): the program is the same for each.
    step_counts: dict = field(default_factory=dict)

    @classmethod
    def start(cls, settings: RunSettings, *, args: Sequence[str], cwd: Path, threads_given: bool) -> Session:
        """Check the backend, start it (and the engine) and return the run's session.

        Under --processes N, the first process only launches the N ranks (``args`` is its pytest
        command) and raises ``RanksEnded`` when they are done; it imports no backend.
        Bad options raise ``backends.BackendError`` or ``ValueError``.
        """
        backends.check_backend(backends.selected_backend())
        layout = settings.layout
        rank = rank_from_env() if layout.processes is not None else None
        if layout.processes is not None and rank is None:
            launch_ranks(settings, args, cwd=cwd, threads_given=threads_given)
        if rank is not None:
            launcher.die_with_launcher()
        backends.prepare_environment(settings.device)
        # NVML's view before the backend touches the GPU: any compute process on it then is someone else's.
        watch = gpu.GpuWatch() if settings.device != "cpu" else None
        engines: list[Engine] = []

        def start_engine(adapter: backends.Adapter) -> None:  # before the backend starts: devices, process group
            check_supported(settings.variant, adapter)  # the adapter's capability flags need its framework
            engines.append(engine_for(adapter, layout, rank, model_config=settings.model, seed=settings.seed))
            engines[0].before_start(adapter)

        adapter = backends.configure(settings.device, settings.threads, **runtime_switches(settings.variant),
                                     before_start=start_engine)
        # What the device decides, now that it is known: still before any model is built.
        check_supported(settings.variant, adapter, adapter.device.kind)
        engines[0].after_start(adapter)
        watch = watch if adapter.device.kind == "gpu" else None
        contention.use_gpu_watch(watch)  # the timed rounds' watch reads other processes' GPU use through it
        problem = gpu_neighbours_problem(watch)
        if problem and settings.strict_gpu:
            raise GpuNeighbours(f"--strict-gpu: {problem}")
        adapter.install_lstm_spy()
        return cls(settings=settings, adapter=adapter, engine=engines[0], started=datetime.now(timezone.utc),
                   gpu_watch=watch, gpu_problem=problem,
                   variant_note=same_as(settings.variant, adapter, adapter.device.kind))

    @property
    def label(self) -> str:
        """Benchmark ids and file names: backend-device, plus the variant when not the default, plus the layout."""
        variant = self.settings.variant
        return (f"{self.adapter.name}-{self.adapter.device.kind}" + ("" if variant == "default" else f"-{variant}")
                + self.settings.layout.suffix)

    def record(self, benchmark: Any, kind: str, metrics: results.Metrics, *, model: Any, imdb: Dataset, seed: int,
               memory_baseline: Any, shape: tuple[int, int] | None = None, **context: Any) -> results.Record:
        """The benchmark's record (context + metrics), stored as its pytest-benchmark extra_info."""
        settings, adapter = self.settings, self.adapter
        described = settings.describe()
        batch_size, maxlen = shape or (settings.model.batch_size, settings.model.maxlen)
        versions = adapter.versions()
        spied, memory = adapter.take_lstm_paths(), adapter.memory_stats(memory_baseline)  # before the cross-check
        if "lstm_kernel" in context:  # a native reference names its own kernel; the Keras model's is not its
            why = "not checked: a native reference names its own kernel"
            name = context.pop("lstm_kernel")
            kernel = results.Kernel(name, observed=why, check=why, family=backends.kernel_family(name))
        else:
            key = (batch_size, maxlen, spied)
            if key not in self.kernel_checks:  # outside any timed region; once per shape and label
                self.kernel_checks[key] = adapter.kernel_cross_check(model, imdb.x_test[:batch_size, -maxlen:], spied)
            check = self.kernel_checks[key]
            kernel = results.Kernel(spied, observed=check.observed, check=check.verdict, family=check.family)
        fields = dict(
            backend=adapter.name, backend_version=versions[adapter.name], keras=versions["keras"],
            device=adapter.device.kind, device_name=adapter.device.name, profile=described["profile"],
            variant=described["variant"], dataset_requested=described["dataset_requested"],
            device_requested=described["device_requested"], batch_size=batch_size, maxlen=maxlen,
            epochs=described["epochs"], threads=described["threads"], seed=seed,
            model_config=described["model_config"], dataset=imdb.info(),
            jit_compile=adapter.resolved_jit_compile(model), kernel=kernel, memory=results.Memory(**memory),
            runtime=adapter.runtime_settings(), precision=adapter.precision(settings.model.dtype_policy, kernel.family),
        )
        if isinstance(metrics, results.StepMetrics) and not self.settings.layout.distributed:
            native = metrics.implementation == "native"
            metrics = dataclasses.replace(metrics, roofline=self.roofline(
                benchmark, kind, model, imdb, batch_size, maxlen, versions=versions, counted=not native))
        entry = results.Record(kind, results.Context(**{**fields, **context}), metrics)
        benchmark.extra_info.update(entry.to_json())
        return entry

    def roofline(self, benchmark: Any, kind: str, model: Any, imdb: Dataset, batch_size: int, maxlen: int, *,
                 versions: dict, counted: bool = True) -> results.Roofline:
        """The step's work (analytic, and the backend's count) against this machine's ceilings.

        Runs after the benchmark's timed rounds. The count runs once per versions, model, kind and shape
        (``counted`` False for a native reference: its program is not the Keras model's), the ceilings
        once per machine, backend, threads and batch size; both are kept on disk (bench/cache.py).
        """
        adapter, step = self.adapter, "train" if "train" in kind else "predict"
        key = (step, batch_size, maxlen, counted)
        if key not in self.step_counts and not counted:
            self.step_counts[key] = backends.StepCount(None, "not counted: a native reference is not the Keras "
                                                             "model's program")
        if key not in self.step_counts:
            x, y = imdb.x_test[:batch_size, -maxlen:], imdb.y_test[:batch_size]
            # The same program for the same versions, model and shape: counted once per machine (torch's
            # counter takes seconds), stored beside the ceilings.
            program = hashlib.sha256(json.dumps(
                [adapter.name, versions, adapter.device.kind, step, batch_size, maxlen,
                 dataclasses.asdict(self.settings.model)], sort_keys=True, default=str).encode()).hexdigest()[:16]
            stored = cache.cached("step-counts", program, lambda: dataclasses.asdict(
                adapter.count_step(model, x, y, train=step == "train")),
                keep=lambda count: not count["counter"].startswith("not counted"))
            self.step_counts[key] = backends.StepCount(**stored)
        count = self.step_counts[key]
        analytic = work.step_work(self.settings.model, step, batch_size, maxlen)
        print_ = fingerprint.fingerprint(backend=adapter.name, versions=versions, device=adapter.device.as_dict(),
                                         threads=self.settings.threads)
        where = (f"{fingerprint.machine_key(print_)}-{adapter.name}-{versions[adapter.name]}-"
                 f"{adapter.device.kind}-t{self.settings.threads}")
        limits = ceilings.cached(where, batch_size, self.settings.model.lstm_units)
        bound = roofline.bounds(analytic, limits, count.dispatches)
        median = benchmark.stats.stats.median
        matmul = analytic.total.matmul_flops
        return results.Roofline(
            flops=analytic.flops, matmul_flops=matmul, bytes=analytic.bytes, intensity=roofline.intensity(analytic),
            counted_matmul_flops=count.matmul_flops, counter=count.counter,
            counted_vs_analytic=None if count.matmul_flops is None else count.matmul_flops / matmul,
            dispatches=count.dispatches, dispatch_how=count.dispatch_how,
            achieved_flops_per_s=analytic.flops / median, ceilings=limits.as_dict(),
            bounds_s=bound.as_seconds(), binding=bound.binding, share=roofline.share(bound, median),
            phases={name: None if phase is None else phase.flops for name, phase in
                    (("forward", analytic.forward), ("backward", analytic.backward),
                     ("optimizer", analytic.optimizer))})

    def kerasbench_machine_info(self) -> dict:
        """kerasbench's part of pytest-benchmark's machine_info."""
        return {"backend": self.adapter.name, **self.adapter.versions(), **self.adapter.device.as_dict(),
                "threads": self.settings.threads}

    def save(self, config: Any, benchmarks: Sequence[Any], get_machine_info: Any, *, finished: bool,
             exitstatus: int | None) -> None:
        """Rewrite this run's result file with every benchmark recorded so far.

        ``config`` gives pytest-benchmark's hooks (its JSON document, commit info); ``benchmarks``
        and ``get_machine_info`` come from its session.
        """
        if self.engine.rank != 0:
            return  # rank 0 writes the file, with every rank's step times (the engine gathers them)
        # A benchmark that failed after its rounds (before ``record``) has statistics but no record:
        # it is named in the run block instead of being written half-described.
        recorded = [b for b in benchmarks if "kind" in b.extra_info]
        self.unrecorded = [b.name for b in benchmarks if "kind" not in b.extra_info]
        if not recorded:
            return
        if self.machine_info is None:
            self.machine_info = get_machine_info()
            commit_info = config.hook.pytest_benchmark_generate_commit_info(config=config)
            config.hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit_info)
            self.commit_info = commit_info
        document = config.hook.pytest_benchmark_generate_json(
            config=config, benchmarks=recorded, include_data=True,
            machine_info=self.machine_info, commit_info=self.commit_info,
        )
        config.hook.pytest_benchmark_update_json(config=config, benchmarks=recorded, output_json=document)
        adapter = self.adapter
        run = results.RunInfo.now(
            backend=adapter.name, device=adapter.device.as_dict(), settings=self.settings.describe(),
            started=self.started, finished=finished, exitstatus=exitstatus, unrecorded=self.unrecorded,
            **repeat_of_run(), fingerprint=fingerprint.fingerprint(
                backend=adapter.name, versions=adapter.versions(), device=adapter.device.as_dict(),
                threads=self.settings.threads),
            device_facts=gpu.device_facts(adapter, self.gpu_watch, energy.energy_meter(adapter.device.kind).source),
            packages=packages.current(os.environ.get(results.ENVIRONMENT_ENV, "")),
        )
        if self.path is None:
            self.path = results.result_path(self.settings.results_dir, self.label, self.settings.profile.name,
                                            self.started)
        results.write(self.path, document, run)


def launch_ranks(settings: RunSettings, args: Sequence[str], *, cwd: Path, threads_given: bool) -> None:
    """Run this same pytest command as --processes N ranks and raise ``RanksEnded`` with how they ended.

    Rank 0 prints to this terminal and writes the result file; the others log to a folder beside
    it, kept (and named) when a rank fails.
    """
    world = settings.layout.processes
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    log_dir = settings.results_dir / f"rank-logs_{stamp}_{os.getpid()}"
    try:
        launcher.run_ranks(args, world, cwd=cwd, device=settings.device, log_dir=log_dir,
                           threads_given=threads_given)
    except launcher.RankFailed as exc:
        raise RanksEnded(f"kerasbench: {exc}", exc.returncode) from None
    except KeyboardInterrupt:
        raise RanksEnded(f"kerasbench: interrupted; all {world} ranks were stopped (logs: {log_dir})",
                         INTERRUPTED) from None
    shutil.rmtree(log_dir, ignore_errors=True)
    raise RanksEnded(f"kerasbench: all {world} ranks finished; rank 0 wrote the results", 0)


def gpu_neighbours_problem(watch: gpu.GpuWatch | None) -> str | None:
    """Why the GPU this run measures on may be shared with other processes, or None."""
    if watch is None:
        return None
    if not watch.available:
        return f"cannot see which other processes use the GPU: NVML {watch.unavailable}"
    if isinstance(watch.others_before, str):
        return f"cannot see which other processes use the GPU: {watch.others_before}"
    if watch.others_before:
        return gpu.other_processes_message(watch.others_before)
    return None


def repeat_of_run() -> dict:
    """run_id and repeat_index, from the variables `python -m bench run` sets for each of its processes."""
    index = os.environ.get(results.REPEAT_INDEX_ENV, "0")
    return {"run_id": os.environ.get(results.RUN_ID_ENV, ""), "repeat_index": int(index) if index.isdigit() else 0}
