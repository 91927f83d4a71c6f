"""The timing and training helpers: staging, steps, first-call timing, NaN detection."""

import math

import numpy as np
import pytest

from bench import backends, timing, training
from bench.data import synthetic
from model import build_model, initialize_weights

pytestmark = pytest.mark.per_backend


@pytest.fixture(scope="module")
def small():
    return synthetic(100, 70, maxlen=20)


@pytest.fixture
def model():
    built = build_model(max_features=20000, embed_dim=8, lstm_units=4)
    initialize_weights(built, 0)
    return built


def test_stage_batches_takes_full_batches_only(small):
    batches = timing.stage_batches(small.x_train, small.y_train, 32, count=10)
    assert len(batches) == 3  # 100 // 32: the partial batch of 4 would retrace
    assert all(tuple(x.shape) == (32, 20) and tuple(y.shape) == (32,) for x, y in batches)


def test_stage_batches_rejects_a_batch_larger_than_the_data(small):
    with pytest.raises(ValueError, match="larger than the 100 samples"):
        timing.stage_batches(small.x_train, small.y_train, 128, count=1)


def test_train_step_updates_weights_and_reports_loss(model, small):
    step = timing.train_step(model, timing.stage_batches(small.x_train, small.y_train, 32, 2))
    before = [w.copy() for w in model.get_weights()]
    logs = step()
    assert math.isfinite(float(logs["loss"]))
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_predict_step_returns_probabilities(model, small):
    step = timing.predict_step(model, timing.stage_batches(small.x_test, small.y_test, 32, 2))
    out = np.asarray(step())
    assert out.shape == (32, 1) and ((out >= 0) & (out <= 1)).all()


class FakeClock:
    """perf_counter stand-in: each call made by the timed function advances it by a known step."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def work(self, seconds):
        self.now += seconds


def test_time_call_and_plain_loop_measure_each_call(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    assert timing.time_call(lambda: clock.work(0.25)) == pytest.approx(0.25)
    durations = iter([0.1, 0.2, 0.3, 0.4, 0.5])
    times = timing.plain_loop(lambda: clock.work(next(durations)), 5)
    np.testing.assert_allclose(times, [0.1, 0.2, 0.3, 0.4, 0.5])


def test_lstm_path_is_recorded(model, small):
    adapter = backends.current()
    adapter.install_lstm_spy()
    adapter.take_lstm_paths()
    model.predict_on_batch(small.x_test[:4])
    expected = {"tensorflow": "tf.while_loop", "jax": "lax.scan", "torch": "per-timestep loop"}
    assert expected[adapter.name] in adapter.take_lstm_paths()


def spy_on_fit(model, monkeypatch):
    """Record what fit_epoch hands to ``model.fit``, then let the real fit run."""
    calls = []
    real_fit = model.fit

    def fit(x, y, **kwargs):
        calls.append((x.copy(), y.copy(), kwargs))
        return real_fit(x, y, **kwargs)

    monkeypatch.setattr(model, "fit", fit)
    return calls


def test_fit_epoch_uses_identical_full_batches(model, small, monkeypatch):
    calls = spy_on_fit(model, monkeypatch)
    record = training.fit_epoch(model, small, epoch=1, batch_size=32, seed=0)
    training.fit_epoch(model, small, epoch=1, batch_size=32, seed=0)  # same seed and epoch: same order
    training.fit_epoch(model, small, epoch=2, batch_size=32, seed=0)  # next epoch: another order
    (x1, y1, kw), (x1_again, _, _), (x2, _, _) = calls
    assert record.epoch == 1 and 0 <= record.val_accuracy <= 1 and math.isfinite(record.loss)
    assert kw["shuffle"] is False and kw["batch_size"] == 32  # fit must not reorder what we drew
    assert len(x1) == 96 and len(kw["validation_data"][0]) == 64  # 100 -> 3 and 70 -> 2 full batches
    np.testing.assert_array_equal(x1, x1_again)
    assert not np.array_equal(x1, x2)
    # Each training row is a distinct row of the data, with its own label.
    index = {row.tobytes(): i for i, row in enumerate(small.x_train)}
    picked = [index[row.tobytes()] for row in x1]
    assert len(set(picked)) == 96 and picked != sorted(picked)
    np.testing.assert_array_equal(y1, small.y_train[picked])


def test_nan_loss_names_epoch_and_step(model, small):
    import keras

    # log of a negative number: NaN on every backend (torch's BCE refuses NaN inputs instead).
    def nan_loss(y_true, y_pred):
        return keras.ops.mean(keras.ops.log(y_pred - 2.0))

    model.compile(optimizer="adam", loss=nan_loss, metrics=["accuracy"])
    with pytest.raises(training.NonFiniteLoss, match="at epoch 2, step 1"):
        training.fit_epoch(model, small, epoch=2, batch_size=32, seed=0)


def test_time_to_accuracy():
    epochs = [training.EpochRecord(i, 10.0, 0.5, 0.5, 0.5, acc) for i, acc in enumerate([0.6, 0.8, 0.9], 1)]
    assert training.time_to_accuracy(epochs, 0.8) == 20.0
    assert training.time_to_accuracy(epochs, 0.95) is None
