"""The kerasbench pytest plugin: options, run state, fixtures, and the result file after each benchmark.

Order matters: options are read and the backend is checked in ``pytest_configure``, before the
first import of Keras (which fixes the backend and starts it). The top-level ``conftest.py`` only
loads this module.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from bench import backends, results
from bench import settings as run_settings
from bench.data import Dataset, DataSourceError, load_imdb
from bench.variants import check_supported


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

    @property
    def label(self) -> str:
        """Benchmark ids and file names: backend-device, plus the variant when not the default."""
        variant = self.settings.variant
        return f"{self.adapter.name}-{self.adapter.device.kind}" + ("" if variant == "default" else f"-{variant}")


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
        check_supported(settings.variant, name)
        backends.prepare_environment(settings.device)
        adapter = backends.configure(settings.device, settings.threads)
    except (backends.BackendError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
    adapter.install_lstm_spy()
    state = RunState(settings=settings, adapter=adapter, started=datetime.now(timezone.utc))
    config.stash[_STATE] = state

    def interrupt(signum: int, frame: object) -> None:
        # SIGTERM (CI time-outs, `kill`) ends the run like Ctrl-C, so finished results are kept. The
        # flag covers a KeyboardInterrupt that lands in a destructor or callback, where Python only
        # prints it: the run then stops after the current benchmark (pytest_runtest_protocol).
        state.terminated = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Benchmark names carry backend and device, e.g. test_train_step[jax-cpu].
    # Step benchmarks also take a (batch size, maxlen) "shape": one point, or the sweep's grid.
    state = state_of(metafunc.config)
    label = state.label
    if "shape" in metafunc.fixturenames:
        cfg = state.settings.model
        points = state.settings.profile.points(cfg.batch_size, cfg.maxlen)
        ids = [f"{label}-b{b}-len{n}" for b, n in points] if len(points) > 1 else [label]
        metafunc.parametrize(("target", "shape"), [(label, point) for point in points], ids=ids)
    elif "target" in metafunc.fixturenames:
        metafunc.parametrize("target", [label], ids=[label])


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
def model(settings: run_settings.RunSettings) -> Any:
    """A fresh compiled model with the same seeded initial weights on every backend."""
    import keras

    from model import build_model, initialize_weights

    keras.utils.set_random_seed(settings.seed)
    built = build_model(settings.model)
    initialize_weights(built, settings.seed)
    return built


@pytest.fixture
def record(pytestconfig: pytest.Config, settings: run_settings.RunSettings,
           imdb: Dataset) -> Callable[..., results.Record]:
    """``record(benchmark, kind, metrics, model=..., shape=..., **context)`` stores a benchmark's record.

    Call it after the benchmark ran: the record (``bench.results.Record``) becomes the benchmark's
    extra_info. ``shape`` is the (batch size, maxlen) a step benchmark ran at; keyword arguments
    override context fields (a native reference names its own kernel). Set up after the data and
    (when the test asks for it first) the model: the memory figures are what the benchmark added.
    """
    adapter = state_of(pytestconfig).adapter
    memory_baseline = adapter.reset_memory_stats()

    def fill(benchmark: Any, kind: str, metrics: results.Metrics, *, model: Any,
             shape: tuple[int, int] | None = None, **context: Any) -> results.Record:
        described = settings.describe()
        batch_size, maxlen = shape or (settings.model.batch_size, settings.model.maxlen)
        versions = adapter.versions()
        fields = dict(
            backend=adapter.name, backend_version=versions[adapter.name], keras=versions["keras"],
            device=adapter.device.kind, device_name=adapter.device.name, profile=described["profile"],
            variant=described["variant"], dataset_requested=described["dataset_requested"],
            device_requested=described["device_requested"], batch_size=batch_size, maxlen=maxlen,
            epochs=described["epochs"], threads=described["threads"], seed=described["seed"],
            model_config=described["model_config"], dataset=imdb.info(),
            jit_compile=adapter.resolved_jit_compile(model), lstm_kernel=adapter.take_lstm_paths(),
            memory=adapter.memory_stats(memory_baseline),
        )
        entry = results.Record(kind, results.Context(**{**fields, **context}), metrics)
        benchmark.extra_info.update(entry.to_json())
        return entry

    return fill


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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _save(session.config, finished=exitstatus != pytest.ExitCode.INTERRUPTED, exitstatus=int(exitstatus))


def _save(config: pytest.Config, *, finished: bool, exitstatus: int | None) -> None:
    """Rewrite this run's result file with every benchmark recorded so far."""
    session = benchmark_session(config)
    if _STATE not in config.stash or session is None or not session.benchmarks:
        return
    state = state_of(config)
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
    )
    if state.path is None:
        state.path = results.result_path(state.settings.results_dir, state.label, state.settings.profile.name,
                                         state.started)
    results.write(state.path, document, run)
