"""Each backend's own count of a step against the analytic one, its ceilings (bench/ceilings.py), and the
phase variants of its train step (bench/phases.py)."""

import math
import time

import numpy as np
import pytest

from bench import backends, ceilings, work
from model import DEFAULT_CONFIG, build_model

pytestmark = pytest.mark.per_backend

SMALL = DEFAULT_CONFIG.replace(max_features=50, embed_dim=8, lstm_units=4)
X = np.random.default_rng(0).integers(1, 50, (4, 12)).astype("int32")
Y = np.array([0, 1, 1, 0], dtype="float32")


@pytest.fixture(scope="module")
def warm_model():
    """The small model after one train and one predict call, as after the timed rounds (built once: TensorFlow
    traces each function for seconds)."""
    model = build_model(SMALL)
    model.train_on_batch(X, Y)
    model.predict_on_batch(X)
    return model


@pytest.mark.parametrize("train", [False, True], ids=["predict", "train"])
def test_the_backend_count_agrees_with_the_analytic_one_or_says_why_not(train, warm_model):
    adapter = backends.current()
    count = adapter.count_step(warm_model, X, Y, train=train)
    analytic = work.step_work(SMALL, "train" if train else "predict", *X.shape).total.matmul_flops
    if count.matmul_flops is None:
        assert count.counter.startswith("no counter: ") and adapter.name == "tensorflow", count.counter
    else:
        # torch skips the gradient of the zero initial state: 4 small products fewer, here 0.93% of the step
        assert count.matmul_flops == pytest.approx(analytic, rel=0.05), count.counter
    assert count.dispatches is None or count.dispatches >= 1


def watch_reading(share_of_two_cpus):
    """A contention.Watch that reads other processes at ``share_of_two_cpus`` of 2 CPUs over 1 s (make test runs
    two lanes at once, so a real watch would see the other lane)."""
    from bench import contention

    class Fixed(contention.Watch):
        def stop(self):
            return contention.contention(1.0, 2, busy_s=2 * share_of_two_cpus, own_s=0.0, steal_s=0.0, threshold=0.1)

    return Fixed


def test_ceilings_are_measured_and_cached(tmp_path, monkeypatch):
    from bench import contention

    monkeypatch.setattr(contention, "Watch", watch_reading(0.02))
    first = ceilings.cached("test-key", 4, 4, cache_dir=tmp_path)
    for value in (first.gemm_flops_per_s, first.triad_bytes_per_s, first.dispatch_s, first.measure_s):
        assert math.isfinite(value) and value > 0
    assert first.cell_gemm_s >= 0 and first.cell_shape == (4, 4, 16)
    assert not first.contended and first.other_cpu_share == pytest.approx(0.02)
    # Every GEMM path the backend has was timed, and the ceiling is the fastest one's, named.
    one = backends.current().to_device(np.ones((2, 2), np.float32))
    assert set(first.gemm_paths_flops_per_s) == set(backends.current().gemms(one, one))
    assert first.gemm_flops_per_s == max(first.gemm_paths_flops_per_s.values())
    assert first.gemm_paths_flops_per_s[first.gemm_path] == first.gemm_flops_per_s
    assert ceilings.cached("test-key", 4, 4, cache_dir=tmp_path) == first  # read back, not measured again
    (cache,) = (tmp_path / "ceilings").iterdir()
    cache.write_text("{broken")
    assert ceilings.cached("test-key", 4, 4, cache_dir=tmp_path).measure_s > 0  # a broken file is measured again


def test_every_gemm_path_computes_the_product():
    import keras

    adapter = backends.current()
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((16, 24), dtype=np.float32), rng.standard_normal((24, 8), dtype=np.float32))
    paths = adapter.gemms(adapter.to_device(a), adapter.to_device(b))
    # torch's CPU build carries oneDNN: its path must be among them, since its LSTM runs there.
    assert ("oneDNN linear" in paths) == (adapter.name == "torch"), list(paths)
    for name, run in paths.items():
        out = run()
        out = out.to_dense() if getattr(out, "is_mkldnn", False) else out  # oneDNN's layout, read back
        np.testing.assert_allclose(keras.ops.convert_to_numpy(out), a @ b, rtol=1e-4, atol=1e-4, err_msg=name)


def test_ceilings_measured_while_contended_are_not_cached(tmp_path, monkeypatch):
    from bench import contention

    monkeypatch.setattr(contention, "Watch", watch_reading(0.5))
    found = ceilings.cached("busy-key", 4, 4, cache_dir=tmp_path)
    assert found.contended and found.other_cpu_share == pytest.approx(0.5)
    assert not (tmp_path / "ceilings").exists()  # never stored: the next process measures again
    monkeypatch.setattr(contention, "Watch", watch_reading(0.02))
    calm = ceilings.cached("busy-key", 4, 4, cache_dir=tmp_path)
    assert not calm.contended
    assert [p.name for p in (tmp_path / "ceilings").iterdir()] == [f"v{ceilings.CACHE_VERSION}-busy-key-b4-u4.json"]


def test_phase_steps_run_each_phase_and_leave_the_weights_alone(warm_model):
    import keras

    adapter = backends.current()
    model = warm_model
    before = [np.array(w) for w in model.get_weights()]
    x, y = adapter.to_device(X), adapter.to_device(Y)
    calls = adapter.phase_steps(model, x, y)
    assert list(calls) == ["forward", "forward_backward", "update"]
    for call in calls.values():
        for _ in range(2):
            adapter.sync(call())
    loss = float(keras.ops.convert_to_numpy(calls["forward"]()))
    assert math.isfinite(loss) and loss > 0
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


PROFILERS = {"torch": "torch.profiler", "jax": "jax.profiler.trace", "tensorflow": "tf.profiler.experimental"}


def test_op_families_come_from_the_backends_own_profiler(warm_model):
    adapter = backends.current()
    x = adapter.to_device(X)
    families, how = adapter.op_families(lambda: warm_model.predict_on_batch(x), 2)
    assert how.startswith(PROFILERS[adapter.name])
    # Every backend's matmuls are found and named in the one vocabulary; the rest of the time is the framework's.
    named = set(families) - {k for k in families if k.startswith("python and framework")}
    assert families["matmul"] > 0 and named <= set(backends.base.OP_FAMILIES) and len(families) - len(named) == 1
    assert all(v >= 0 for v in families.values())


def test_op_families_of_a_train_step_add_up_to_at_most_its_wall_time(warm_model):
    # The families are wall time under the profiler, by one rule on every backend: they cannot exceed it.
    adapter = backends.current()
    x, y = adapter.to_device(X), adapter.to_device(Y)
    warm_model.train_on_batch(x, y)
    start = time.perf_counter()
    families, _ = adapter.op_families(lambda: warm_model.train_on_batch(x, y), 2)
    adapter.sync()  # op_families syncs each call; said here too, since this clock times device work
    elapsed = time.perf_counter() - start  # the profiled calls, plus the profiler's start and its reading
    assert 0 < 2 * sum(families.values()) <= elapsed
