"""The timing and training helpers: staging, steps, first-call timing, NaN detection."""

import math

import numpy as np
import pytest

from bench import backend, timing, training
from bench.data import synthetic
from model import build_model, initialize_weights


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


def test_time_call_and_plain_loop_measure_each_call():
    calls = []
    assert timing.time_call(lambda: calls.append(1)) >= 0
    times = timing.plain_loop(lambda: calls.append(1), 5)
    assert len(calls) == 6 and times.shape == (5,) and (times >= 0).all()


def test_lstm_path_is_recorded(model, small):
    backend.install_lstm_spy()
    backend.take_lstm_paths()
    model.predict_on_batch(small.x_test[:4])
    expected = {"tensorflow": "tf.while_loop", "jax": "lax.scan", "torch": "per-timestep loop"}
    assert expected[backend.selected_backend()] in backend.take_lstm_paths()


def test_fit_epoch_uses_identical_full_batches(model, small):
    record = training.fit_epoch(model, small, epoch=1, batch_size=32, seed=0)
    assert record.epoch == 1 and record.seconds > 0
    assert 0 <= record.val_accuracy <= 1 and math.isfinite(record.loss)


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
