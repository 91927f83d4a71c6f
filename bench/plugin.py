"""The kerasbench pytest plugin: options, run state, fixtures, and the result file after each benchmark.

Order matters: options are read and the backend is checked in ``pytest_configure``, before the
first import of Keras (which fixes the backend and starts it). The top-level ``conftest.py`` only
loads this module.
"""

from __future__ import annotations

import inspect
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import pytest

from bench import backends, machine, results, training
from bench import settings as run_settings
from bench.data import Dataset, DataSourceError, load_imdb
from bench.distributed import launcher
from bench.distributed.engine import Engine, engine_for
from bench.distributed.layout import rank_from_env
from bench.variants import check_supported, runtime_switches


@dataclass
class RunState:
    """What one pytest process of kerasbench knows about its run."""

    settings: run_settings.RunSettings
    adapter: backends.Adapter
    started: datetime
    path: Path | None = None  # the result file, named when the first benchmark finishes
    machine_info: dict | None = None  # pytest-benchmark's, computed once
    commit_info: dict | None = None
    unrecorded: list[str] = field(default_factory=list)
    terminated: bool = False  # a SIGTERM arrived
    gpu_watch: machine.GpuWatch | None = None  # NVML's view of the GPU this run measures on (GPU runs only)
    # The LSTM kernel cross-check per (batch size, maxlen, spy label): the program is the same for each.
    kernel_checks: dict = field(default_factory=dict)
    engine: Engine = field(default_factory=Engine)  # --devices/--processes: its data-parallel engine

    @property
    def label(self) -> str:
        """Benchmark ids and file names: backend-device, plus the variant when not the default, plus the layout."""
        variant = self.settings.variant
        return (f"{self.adapter.name}-{self.adapter.device.kind}" + ("" if variant == "default" else f"-{variant}")
                + self.settings.layout.suffix)


_STATE = pytest.StashKey[RunState]()


def state_of(config: pytest.Config) -> RunState:
    return config.stash[_STATE]


def benchmark_session(config: pytest.Config) -> Any:
    """pytest-benchmark's session object (its benchmarks, machine info), or None.

    The one access to pytest-benchmark internals: it keeps the session as the private
    ``config._benchmarksession`` and offers no public accessor (pytest-benchmark 5.x).
    """
    return getattr(config, "_benchmarksession", None)


# ---------------------------------------------------------------------------------------- options

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kerasbench")
    for flag, kwargs in run_settings.OPTIONS:
        group.addoption(flag, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    try:
        settings = run_settings.from_options(config.getoption)
        name = backends.selected_backend()
        backends.check_backend(name)
        layout = settings.layout
        rank = rank_from_env() if layout.processes is not None else None
        if layout.processes is not None and rank is None:
            _launch_ranks(config, settings)  # this process only launches the ranks; it never returns
        if rank is not None:
            launcher.die_with_launcher()
        backends.prepare_environment(settings.device)
        # NVML's view before the backend touches the GPU: any compute process on it then is someone else's.
        watch = machine.GpuWatch() if settings.device != "cpu" else None
        engines: list[Engine] = []

        def start_engine(adapter: backends.Adapter) -> None:  # before the backend starts: devices, process group
            check_supported(settings.variant, adapter)
            engines.append(engine_for(adapter, layout, rank, model_config=settings.model, seed=settings.seed))
            engines[0].before_start(adapter)

        adapter = backends.configure(settings.device, settings.threads, **runtime_switches(settings.variant),
                                     before_start=start_engine)
        engines[0].after_start(adapter)
    except (backends.BackendError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
    watch = _check_gpu_neighbours(config, watch if adapter.device.kind == "gpu" else None, settings)
    adapter.install_lstm_spy()
    state = RunState(settings=settings, adapter=adapter, started=datetime.now(timezone.utc), gpu_watch=watch,
                     engine=engines[0])
    config.stash[_STATE] = state

    def interrupt(signum: int, frame: object) -> None:
        # SIGTERM (CI time-outs, `kill`) ends the run like Ctrl-C, so finished results are kept. The
        # flag covers a KeyboardInterrupt that lands in a destructor or callback, where Python only
        # prints it: the run then stops after the current benchmark (pytest_runtest_protocol).
        state.terminated = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _launch_ranks(config: pytest.Config, settings: run_settings.RunSettings) -> NoReturn:
    """Run this same pytest command as --processes N ranks (bench/distributed/launcher.py) and end with how they ended.

    Rank 0 prints to this terminal and writes the result file; the others log to a folder beside
    it, kept (and named) when a rank fails. This process imports no backend and runs no benchmark.
    """
    params = config.invocation_params
    world = settings.layout.processes
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    log_dir = settings.results_dir / f"rank-logs_{stamp}_{os.getpid()}"
    try:
        launcher.run_ranks(params.args, world, cwd=params.dir, device=settings.device, log_dir=log_dir,
                           threads_given=config.getoption("threads") is not None)
    except launcher.RankFailed as exc:
        pytest.exit(f"kerasbench: {exc}", returncode=exc.returncode)
    except KeyboardInterrupt:
        pytest.exit(f"kerasbench: interrupted; all {world} ranks were stopped (logs: {log_dir})",
                    returncode=pytest.ExitCode.INTERRUPTED)
    shutil.rmtree(log_dir, ignore_errors=True)
    pytest.exit(f"kerasbench: all {world} ranks finished; rank 0 wrote the results", returncode=pytest.ExitCode.OK)


def _check_gpu_neighbours(config: pytest.Config, watch: machine.GpuWatch | None,
                          settings: run_settings.RunSettings) -> machine.GpuWatch | None:
    """Warn (with --strict-gpu: refuse) when other processes use the GPU this run measures on."""
    if watch is None:
        return None
    problem = None
    if not watch.available:
        problem = f"cannot see which other processes use the GPU: NVML {watch.unavailable}"
    elif isinstance(watch.others_before, str):
        problem = f"cannot see which other processes use the GPU: {watch.others_before}"
    elif watch.others_before:
        problem = machine.other_processes_message(watch.others_before)
    if problem and settings.strict_gpu:
        raise pytest.UsageError(f"--strict-gpu: {problem}")
    if problem:
        config.issue_config_time_warning(pytest.PytestWarning(problem), stacklevel=2)
    return watch


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Benchmark names carry backend and device, e.g. test_train_step[jax-cpu].
    # Step benchmarks also take a (batch size, maxlen) "shape": one point, or the sweep's grid.
    # A benchmark that takes ``seed`` itself (the accuracy one) runs once per seed of --seeds,
    # named test_accuracy[jax-cpu-seed3] only when there are several.
    # Under --devices/--processes (ids end in -dpN / -mpN) only benchmarks that take ``layout`` run.
    state = state_of(metafunc.config)
    label = state.label
    layout_marks: tuple = ()
    if state.engine.distributed and "layout" not in metafunc.fixturenames:
        layout_marks = (pytest.mark.skip(reason="--devices/--processes apply to the train-step and accuracy "
                                                "benchmarks only"),)
    if "shape" in metafunc.fixturenames:
        cfg = state.settings.model
        points = state.settings.profile.points(cfg.batch_size, cfg.maxlen)
        ids = [f"{label}-b{b}-len{n}" for b, n in points] if len(points) > 1 else [label]
        profile = state.settings.profile
        marks = layout_marks + (() if profile.step_benchmarks else (
            pytest.mark.skip(reason=f"the {profile.name} profile measures accuracy only"),))
        metafunc.parametrize(("target", "shape"), [pytest.param(label, point, marks=marks) for point in points],
                             ids=ids)
    elif "target" in metafunc.fixturenames and "seed" in inspect.signature(metafunc.function).parameters:
        seeds = state.settings.accuracy_seeds
        ids = [f"{label}-seed{seed}" for seed in seeds] if len(seeds) > 1 else [label]
        metafunc.parametrize(("target", "seed"), [pytest.param(label, seed, marks=layout_marks) for seed in seeds],
                             ids=ids)
    elif "target" in metafunc.fixturenames:
        metafunc.parametrize("target", [pytest.param(label, marks=layout_marks)], ids=[label])


# --------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> run_settings.RunSettings:
    return state_of(pytestconfig).settings


@pytest.fixture(scope="session")
def imdb(settings: run_settings.RunSettings) -> Dataset:
    """The benchmark data, loaded once per session from the source the options name."""
    try:
        # Padded to the longest sweep length: x[:, -n:] is then the data padded/truncated to n.
        maxlen = max((settings.model.maxlen, *settings.profile.sweep_maxlens))
        dataset = load_imdb(
            settings.dataset, max_features=settings.model.max_features, maxlen=maxlen,
            train_samples=settings.train_samples, test_samples=settings.test_samples, path=settings.imdb_path,
        )
    except DataSourceError as exc:
        pytest.exit(f"kerasbench: {exc}", returncode=4)
    smallest = min(len(dataset.y_train), len(dataset.y_test))
    largest_batch = max(b for b, _ in settings.profile.points(settings.model.batch_size, maxlen))
    if largest_batch > smallest:
        pytest.exit(f"kerasbench: batch size {largest_batch} is larger than the {smallest} reviews of "
                    "the smaller split: no full batch to time. Lower --batch-size or raise --train-samples/"
                    "--test-samples.", returncode=4)
    return dataset


@pytest.fixture
def seed(settings: run_settings.RunSettings) -> int:
    """The seed of this benchmark: --seed, or for the accuracy benchmark its own seed of --seeds."""
    return settings.seed


@pytest.fixture(scope="session")
def layout(pytestconfig: pytest.Config) -> Engine:
    """The run's data-parallel engine (bench/distributed/engine.py); ``layout.distributed`` is False on one device."""
    return state_of(pytestconfig).engine


@pytest.fixture
def model(pytestconfig: pytest.Config, settings: run_settings.RunSettings, seed: int) -> Any:
    """A fresh compiled model with the same seeded initial weights on every backend (in the engine's scope)."""
    import keras

    from model import build_model, initialize_weights

    with state_of(pytestconfig).engine.scope():
        keras.utils.set_random_seed(seed)
        built = build_model(settings.model)
        initialize_weights(built, seed)
    return built


@pytest.fixture
def record(pytestconfig: pytest.Config, settings: run_settings.RunSettings,
           imdb: Dataset, seed: int) -> Callable[..., results.Record]:
    """``record(benchmark, kind, metrics, model=..., shape=..., **context)`` stores a benchmark's record.

    Call it after the benchmark ran: the record (``bench.results.Record``) becomes the benchmark's
    extra_info. ``shape`` is the (batch size, maxlen) a step benchmark ran at; keyword arguments
    override context fields (a native reference names its own kernel). Set up after the data and
    (when the test asks for it first) the model: the memory figures are what the benchmark added.
    """
    state = state_of(pytestconfig)
    adapter = state.adapter
    memory_baseline = adapter.reset_memory_stats()

    def fill(benchmark: Any, kind: str, metrics: results.Metrics, *, model: Any,
             shape: tuple[int, int] | None = None, **context: Any) -> results.Record:
        described = settings.describe()
        batch_size, maxlen = shape or (settings.model.batch_size, settings.model.maxlen)
        versions = adapter.versions()
        spied, memory = adapter.take_lstm_paths(), adapter.memory_stats(memory_baseline)  # before the cross-check
        if "lstm_kernel" in context:  # a native reference names its own kernel; the Keras model's is not its
            why = "not checked: a native reference names its own kernel"
            kernel = {"lstm_kernel_observed": why, "lstm_kernel_check": why,
                      "lstm_kernel_family": backends.kernel_family(context["lstm_kernel"])}
        else:
            key = (batch_size, maxlen, spied)
            if key not in state.kernel_checks:  # outside any timed region; once per shape and label
                state.kernel_checks[key] = adapter.kernel_cross_check(model, imdb.x_test[:batch_size, -maxlen:], spied)
            check = state.kernel_checks[key]
            kernel = {"lstm_kernel_observed": check.observed, "lstm_kernel_check": check.verdict,
                      "lstm_kernel_family": check.family}
        fields = dict(
            backend=adapter.name, backend_version=versions[adapter.name], keras=versions["keras"],
            device=adapter.device.kind, device_name=adapter.device.name, profile=described["profile"],
            variant=described["variant"], dataset_requested=described["dataset_requested"],
            device_requested=described["device_requested"], batch_size=batch_size, maxlen=maxlen,
            epochs=described["epochs"], threads=described["threads"], seed=seed,
            model_config=described["model_config"], dataset=imdb.info(),
            jit_compile=adapter.resolved_jit_compile(model), lstm_kernel=spied, memory=memory, **kernel,
            runtime=adapter.runtime_settings(),
        )
        entry = results.Record(kind, results.Context(**{**fields, **context}), metrics)
        benchmark.extra_info.update(entry.to_json())
        return entry

    return fill


@pytest.fixture
def progress(pytestconfig: pytest.Config, settings: run_settings.RunSettings, seed: int) -> training.Progress:
    """Progress lines of a training run, shown live on pytest's terminal (and so in `bench run`'s log)."""
    label = state_of(pytestconfig).label + (f" seed {seed}" if len(settings.accuracy_seeds) > 1 else "")
    return training.Progress(terminal_writer(pytestconfig), settings.model.epochs, label)


def terminal_writer(config: pytest.Config) -> Callable[[str], None]:
    """Write a line to pytest's terminal while a test runs, the way pytest's live logging does.

    Output capture is suspended for the line (pytest's capture manager), so it shows with or
    without -s and lands, one line at a time, in the pipe `python -m bench run` reads.
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return lambda line: None

    def write(line: str) -> None:
        if capture is None:
            reporter.write_line(line)
        else:
            with capture.global_and_fixture_disabled():
                reporter.write_line(line)
        reporter.flush()

    return write


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    machine_info["kerasbench"] = {
        "backend": state.adapter.name, **state.adapter.versions(), **state.adapter.device.as_dict(),
        "threads": state.settings.threads,
    }


# ---------------------------------------------------------------------------------- failures, saving

@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    try:
        return (yield)
    except Exception as exc:
        if not backends.is_out_of_memory(exc):
            raise
        model = state_of(item.config).settings.model
        pytest.fail(
            f"out of memory at batch size {model.batch_size}, maxlen {model.maxlen} "
            f"({type(exc).__name__}). Lower --batch-size or --maxlen.", pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    outcome = yield
    _save(item.config, finished=False, exitstatus=None)
    if _STATE in item.config.stash and state_of(item.config).terminated:
        pytest.exit("terminated (SIGTERM)", returncode=pytest.ExitCode.INTERRUPTED)
    return outcome


def pytest_collection_finish(session: pytest.Session) -> None:
    if _STATE in session.config.stash and any("benchmark" in getattr(item, "fixturenames", ())
                                              for item in session.items):
        try:
            results.check_writable(state_of(session.config).settings.results_dir)
        except OSError as exc:
            raise pytest.UsageError(str(exc)) from None


def pytest_unconfigure(config: pytest.Config) -> None:
    if _STATE in config.stash:
        state_of(config).engine.finish()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _save(session.config, finished=exitstatus != pytest.ExitCode.INTERRUPTED, exitstatus=int(exitstatus))


def _save(config: pytest.Config, *, finished: bool, exitstatus: int | None) -> None:
    """Rewrite this run's result file with every benchmark recorded so far."""
    session = benchmark_session(config)
    if _STATE not in config.stash or session is None or not session.benchmarks:
        return
    state = state_of(config)
    if state.engine.rank != 0:
        return  # rank 0 writes the file, with every rank's step times (bench/distributed/ gathers them)
    # A benchmark that failed after its rounds (before ``record``) has statistics but no record:
    # it is named in the run block instead of being written half-described.
    recorded = [b for b in session.benchmarks if "kind" in b.extra_info]
    state.unrecorded = [b.name for b in session.benchmarks if "kind" not in b.extra_info]
    if not recorded:
        return
    if state.machine_info is None:
        state.machine_info = session.get_machine_info()
        commit_info = config.hook.pytest_benchmark_generate_commit_info(config=config)
        config.hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit_info)
        state.commit_info = commit_info
    document = config.hook.pytest_benchmark_generate_json(
        config=config, benchmarks=recorded, include_data=True,
        machine_info=state.machine_info, commit_info=state.commit_info,
    )
    config.hook.pytest_benchmark_update_json(config=config, benchmarks=recorded, output_json=document)
    run = results.RunInfo.now(
        backend=state.adapter.name, device=state.adapter.device.as_dict(), settings=state.settings.describe(),
        started=state.started, finished=finished, exitstatus=exitstatus, unrecorded=state.unrecorded,
        **_repeat_of_run(), fingerprint=machine.fingerprint(
            backend=state.adapter.name, versions=state.adapter.versions(), device=state.adapter.device.as_dict(),
            threads=state.settings.threads),
        device_facts=machine.device_facts(state.adapter, state.gpu_watch),
    )
    if state.path is None:
        state.path = results.result_path(state.settings.results_dir, state.label, state.settings.profile.name,
                                         state.started)
    results.write(state.path, document, run)


def _repeat_of_run() -> dict:
    """run_id and repeat_index, from the variables `python -m bench run` sets for each of its processes."""
    index = os.environ.get(results.REPEAT_INDEX_ENV, "0")
    return {"run_id": os.environ.get(results.RUN_ID_ENV, ""), "repeat_index": int(index) if index.isdigit() else 0}
