"""The kerasbench pytest plugin: hooks, options and fixtures only.

The run itself (settings, backend, engine, records, the result file) is bench/session.py's, as
pytest-benchmark splits its plugin.py from its session.py. The top-level ``conftest.py`` only
loads this module.
"""

from __future__ import annotations

import inspect
import signal
from collections.abc import Callable
from typing import Any

import pytest

from bench import backends, contention, results, training
from bench import settings as run_settings
from bench.data import Dataset, DataSourceError, load_imdb
from bench.distributed.engine import Engine
from bench.session import GpuNeighbours, RanksEnded, Session

_SESSION = pytest.StashKey[Session]()


def session_of(config: pytest.Config) -> Session:
    return config.stash[_SESSION]


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
        session = Session.start(settings, args=config.invocation_params.args, cwd=config.invocation_params.dir,
                                threads_given=config.getoption("threads") is not None)
    except (backends.BackendError, ValueError, GpuNeighbours) as exc:
        raise pytest.UsageError(str(exc)) from None
    except RanksEnded as ended:  # this process only launched the ranks
        pytest.exit(str(ended), returncode=ended.returncode)
    if session.gpu_problem:
        config.issue_config_time_warning(pytest.PytestWarning(session.gpu_problem), stacklevel=2)
    if session.variant_note:
        config.issue_config_time_warning(pytest.PytestWarning(session.variant_note), stacklevel=2)
    config.stash[_SESSION] = session

    def interrupt(signum: int, frame: object) -> None:
        # SIGTERM (CI time-outs, `kill`) ends the run like Ctrl-C, so finished results are kept. The
        # flag covers a KeyboardInterrupt that lands in a destructor or callback, where Python only
        # prints it: the run then stops after the current benchmark (pytest_runtest_protocol).
        session.terminated = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Benchmark names carry backend and device, e.g. test_train_step[jax-cpu].
    # Step benchmarks also take a (batch size, maxlen) "shape": one point, or the sweep's grid.
    # A benchmark that takes ``seed`` itself (the accuracy one) runs once per seed of --seeds,
    # named test_accuracy[jax-cpu-seed3] only when there are several.
    # Under --devices/--processes (ids end in -dpN / -mpN) only benchmarks that take ``layout`` run.
    state = session_of(metafunc.config)
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
    return session_of(pytestconfig).settings


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
    return session_of(pytestconfig).engine


@pytest.fixture
def model(pytestconfig: pytest.Config, settings: run_settings.RunSettings, seed: int) -> Any:
    """A fresh compiled model with the same seeded initial weights on every backend (in the engine's scope)."""
    import keras

    from model import build_model, initialize_weights

    with session_of(pytestconfig).engine.scope():
        keras.utils.set_random_seed(seed)
        built = build_model(settings.model)
        initialize_weights(built, seed)
    return built


@pytest.fixture
def record(pytestconfig: pytest.Config, imdb: Dataset, seed: int) -> Callable[..., results.Record]:
    """``record(benchmark, kind, metrics, model=..., shape=..., **context)`` stores a benchmark's record.

    Call it after the benchmark ran: the record (``bench.results.Record``, built by
    ``Session.record``) becomes the benchmark's extra_info. ``shape`` is the (batch size, maxlen) a
    step benchmark ran at; keyword arguments override context fields (a native reference names its
    own kernel). Set up after the data and (when the test asks for it first) the model: the memory
    figures are what the benchmark added.
    """
    session = session_of(pytestconfig)
    memory_baseline = session.adapter.reset_memory_stats()
    write = terminal_writer(pytestconfig)

    def fill(benchmark: Any, kind: str, metrics: results.Metrics, *, model: Any,
             shape: tuple[int, int] | None = None, **context: Any) -> results.Record:
        made = session.record(benchmark, kind, metrics, model=model, imdb=imdb, seed=seed,
                              memory_baseline=memory_baseline, shape=shape, **context)
        try:
            line = contention.warning(kind, made.metrics.contention, session.settings.strict_cpu)
        except contention.Contended as exc:  # after recording: the file keeps the figures
            pytest.fail(str(exc), pytrace=False)
        if line:
            write(line)
        return made

    return fill


@pytest.fixture
def progress(pytestconfig: pytest.Config, settings: run_settings.RunSettings, seed: int) -> training.Progress:
    """Progress lines of a training run, shown live on pytest's terminal (and so in `bench run`'s log)."""
    label = session_of(pytestconfig).label + (f" seed {seed}" if len(settings.accuracy_seeds) > 1 else "")
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
    session = config.stash.get(_SESSION, None)
    if session is not None:
        machine_info["kerasbench"] = session.kerasbench_machine_info()


# ---------------------------------------------------------------------------------- failures, saving

@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    try:
        return (yield)
    except Exception as exc:
        if not backends.is_out_of_memory(exc):
            raise
        model = session_of(item.config).settings.model
        pytest.fail(
            f"out of memory at batch size {model.batch_size}, maxlen {model.maxlen} "
            f"({type(exc).__name__}). Lower --batch-size or --maxlen.", pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    outcome = yield
    _save(item.config, finished=False, exitstatus=None)
    if _SESSION in item.config.stash and session_of(item.config).terminated:
        pytest.exit("terminated (SIGTERM)", returncode=pytest.ExitCode.INTERRUPTED)
    return outcome


def pytest_collection_finish(session: pytest.Session) -> None:
    if _SESSION in session.config.stash and any("benchmark" in getattr(item, "fixturenames", ())
                                              for item in session.items):
        try:
            results.check_writable(session_of(session.config).settings.results_dir)
        except OSError as exc:
            raise pytest.UsageError(str(exc)) from None


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SESSION in config.stash:
        session_of(config).engine.finish()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _save(session.config, finished=exitstatus != pytest.ExitCode.INTERRUPTED, exitstatus=int(exitstatus))


def _save(config: pytest.Config, *, finished: bool, exitstatus: int | None) -> None:
    """Rewrite this run's result file with every benchmark recorded so far (after each benchmark)."""
    benchmarks = benchmark_session(config)
    if _SESSION in config.stash and benchmarks is not None and benchmarks.benchmarks:
        session_of(config).save(config, benchmarks.benchmarks, benchmarks.get_machine_info, finished=finished,
                                exitstatus=exitstatus)
