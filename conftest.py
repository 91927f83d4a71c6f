"""pytest wiring for kerasbench: options, the backend and device, shared fixtures, result files.

Order matters: options are read and the backend is checked in ``pytest_configure``, before the
first import of Keras (which fixes the backend and starts it).
"""

from __future__ import annotations

import signal
from datetime import datetime, timezone

import pytest

from bench import backend, results
from bench import settings as run_settings
from bench.data import Dataset, DataSourceError, load_imdb
from bench.variants import check_supported

_STATE = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kerasbench")
    for flag, kwargs in run_settings.OPTIONS:
        group.addoption(flag, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    try:
        settings = run_settings.from_options(config.getoption, str(config.rootpath))
        name = backend.selected_backend()
        backend.check_backend(name)
        check_supported(settings.variant, name)
        backend.prepare_environment(settings.device)
        device = backend.configure(settings.device, settings.threads)
    except (backend.BackendError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
    backend.install_lstm_spy()
    started = datetime.now(timezone.utc)
    config.stash[_STATE] = {
        "settings": settings,
        "backend": name,
        "device": device,
        # Benchmark ids and file names: backend-device, plus the variant when not the default.
        "label": f"{name}-{device['device']}" + ("" if settings.variant == "default" else f"-{settings.variant}"),
        "started": started,
        "path": None,  # set when the first benchmark finishes
    }
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM (CI time-outs, `kill`) ends the run like Ctrl-C, so finished results are kept.
    raise KeyboardInterrupt


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Benchmark names carry backend and device, e.g. test_train_step[jax-cpu].
    # Step benchmarks also take a (batch size, maxlen) "shape": one point, or the sweep's grid.
    state = metafunc.config.stash[_STATE]
    label = state["label"]
    if "shape" in metafunc.fixturenames:
        cfg = state["settings"].model
        points = state["settings"].profile.points(cfg.batch_size, cfg.maxlen)
        ids = [f"{label}-b{b}-len{n}" for b, n in points] if len(points) > 1 else [label]
        metafunc.parametrize(("target", "shape"), [(label, point) for point in points], ids=ids)
    elif "target" in metafunc.fixturenames:
        metafunc.parametrize("target", [label], ids=[label])


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> run_settings.RunSettings:
    return pytestconfig.stash[_STATE]["settings"]


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
def model(settings: run_settings.RunSettings):
    """A fresh compiled model with the same seeded initial weights on every backend."""
    import keras

    from model import build_model, initialize_weights

    keras.utils.set_random_seed(settings.seed)
    built = build_model(settings.model)
    initialize_weights(built, settings.seed)
    return built


@pytest.fixture
def record(pytestconfig: pytest.Config, settings: run_settings.RunSettings, imdb: Dataset):
    """``record(benchmark, model, **extra)`` fills a benchmark's extra_info after it ran.

    Set up after the data and (when the test asks for it first) the model: the memory figures
    are what the benchmark itself added.
    """
    state = pytestconfig.stash[_STATE]
    memory_baseline = backend.reset_memory_stats()

    def fill(benchmark, model, **extra) -> None:
        info = benchmark.extra_info
        info.update(
            backend=state["backend"], **backend.versions(), **state["device"],
            **settings.describe(), dataset=imdb.info(),
            jit_compile=backend.resolved_jit_compile(model), lstm_kernel=backend.take_lstm_paths(),
            **backend.memory_stats(memory_baseline),
        )
        info.update(extra)

    return fill


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    machine_info["kerasbench"] = {
        "backend": state["backend"], **backend.versions(), **state["device"],
        "threads": state["settings"].threads,
    }


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    try:
        return (yield)
    except Exception as exc:
        if not backend.is_out_of_memory(exc):
            raise
        settings = item.config.stash[_STATE]["settings"]
        pytest.fail(
            f"out of memory at batch size {settings.model.batch_size}, maxlen {settings.model.maxlen} "
            f"({type(exc).__name__}). Lower --batch-size or --maxlen.", pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    outcome = yield
    _save(item.config, finished=False, exitstatus=None)
    return outcome


def pytest_collection_finish(session: pytest.Session) -> None:
    if any("benchmark" in getattr(item, "fixturenames", ()) for item in session.items):
        try:
            results.check_writable(session.config.stash[_STATE]["settings"].results_dir)
        except OSError as exc:
            raise pytest.UsageError(str(exc)) from None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _save(session.config, finished=exitstatus != pytest.ExitCode.INTERRUPTED, exitstatus=int(exitstatus))


def _save(config: pytest.Config, *, finished: bool, exitstatus: int | None) -> None:
    """Rewrite this run's result file with every benchmark completed so far."""
    if _STATE not in config.stash:
        return
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    state = config.stash[_STATE]
    if "machine_info" not in state:
        state["machine_info"] = session.get_machine_info()
        commit_info = config.hook.pytest_benchmark_generate_commit_info(config=config)
        config.hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit_info)
        state["commit_info"] = commit_info
    document = config.hook.pytest_benchmark_generate_json(
        config=config, benchmarks=session.benchmarks, include_data=True,
        machine_info=state["machine_info"], commit_info=state["commit_info"],
    )
    config.hook.pytest_benchmark_update_json(config=config, benchmarks=session.benchmarks, output_json=document)
    document["kerasbench"] = results.run_block(
        backend=state["backend"], device=state["device"], settings=state["settings"].describe(),
        started=state["started"], finished=finished, exitstatus=exitstatus,
    )
    if state["path"] is None:
        state["path"] = results.result_path(
            state["settings"].results_dir, state["label"], state["settings"].profile.name, state["started"]
        )
    results.write_atomic(state["path"], document)
