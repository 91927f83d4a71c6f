"""The native references do Keras's math: same predictions, same loss, same Adam step, from the same weights."""

import itertools

import numpy as np
import pytest

from bench import backends, native
from bench.native.jax import JaxNative
from bench.native.weights import adam_settings, keras_epsilon, keras_weights
from model import build_model, initialize_weights

pytestmark = [pytest.mark.per_backend,
              pytest.mark.skipif(not native.is_supported(), reason=str(native.why_unsupported()))]

BATCH, MAXLEN, VOCAB = 4, 12, 500


@pytest.fixture
def model():
    built = build_model(max_features=VOCAB, embed_dim=8, lstm_units=4)
    initialize_weights(built, 0)
    return built


@pytest.fixture
def batch():
    rng = np.random.default_rng(1)
    x = rng.integers(1, VOCAB, size=(BATCH, MAXLEN)).astype("int32")
    y = np.array([0, 1, 1, 0], dtype="float32")
    return x, y


def test_copied_weights_are_keras_weights_in_keras_order(model):
    copied = native.build_native(model).get_weights()
    expected = model.get_weights()
    assert [w.shape for w in copied] == [w.shape for w in expected]
    for ours, theirs in zip(copied, expected):
        np.testing.assert_array_equal(ours, theirs)


def test_forward_matches_keras_predict(model, batch):
    x, _ = batch
    ours = native.build_native(model)
    predicted = ours.predict_on_batch(ours.stage(x, batch[1])[0])
    assert predicted.shape == (BATCH, 1)
    np.testing.assert_allclose(predicted, np.asarray(model.predict_on_batch(x)), rtol=0, atol=1e-5)


def test_one_train_step_matches_keras_loss_and_update(model, batch):
    x, y = batch
    ours = native.build_native(model)  # copies the weights before Keras trains
    before = model.get_weights()
    keras_loss = float(model.train_on_batch(x, y, return_dict=True)["loss"])
    native_loss = ours.train_on_batch(*ours.stage(x, y))
    assert native_loss == pytest.approx(keras_loss, abs=1e-5)
    for index, (ours_w, keras_w, old) in enumerate(zip(ours.get_weights(), model.get_weights(), before)):
        assert not np.array_equal(keras_w, old) or index == 0  # every weight moved (unused embedding rows aside)
        np.testing.assert_allclose(ours_w, keras_w, rtol=0, atol=1e-5, err_msg=f"weight {index}")


def test_several_steps_track_keras(model, batch):
    # Adam's later steps use the step count and both moments: three steps agree too.
    x, y = batch
    ours = native.build_native(model)
    staged = ours.stage(x, y)
    for _ in range(3):
        keras_loss = float(model.train_on_batch(x, y, return_dict=True)["loss"])
        assert ours.train_on_batch(*staged) == pytest.approx(keras_loss, abs=1e-5)
    for ours_w, keras_w in zip(ours.get_weights(), model.get_weights()):
        np.testing.assert_allclose(ours_w, keras_w, rtol=0, atol=2e-5)


@pytest.mark.skipif(backends.selected_backend() != "jax", reason="the hoisting choice exists in the JAX reference only")
@pytest.mark.parametrize("hoist", [True, False])
def test_jax_both_lstm_formulations_match_keras(model, batch, hoist):
    # Only the one this device picks runs in the benchmark; check the other here too (GPUs hoist).
    x, y = batch
    ours = JaxNative(keras_weights(model), adam_settings(model), keras_epsilon(), hoist=hoist)
    xs, ys = ours.stage(x, y)
    np.testing.assert_allclose(ours.predict_on_batch(xs), np.asarray(model.predict_on_batch(x)), rtol=0, atol=1e-5)
    keras_loss = float(model.train_on_batch(x, y, return_dict=True)["loss"])
    assert ours.train_on_batch(xs, ys) == pytest.approx(keras_loss, abs=1e-5)
    for ours_w, keras_w in zip(ours.get_weights(), model.get_weights()):
        np.testing.assert_allclose(ours_w, keras_w, rtol=0, atol=1e-5)


def test_native_training_leaves_the_keras_model_alone(model, batch):
    before = model.get_weights()
    native.native_train_step(model, [batch])()
    for old, now in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, now)


def test_step_callables_learn_a_learnable_batch(model):
    # Label = whether the first token is in the upper half of the vocabulary.
    rng = np.random.default_rng(2)
    x = rng.integers(1, VOCAB, size=(BATCH, MAXLEN)).astype("int32")
    x[:, 0] = [10, 400, 20, 450]
    y = (x[:, 0] > VOCAB // 2).astype("float32")
    adapter = backends.current()
    batches = [(adapter.to_device(x), adapter.to_device(y))]  # staged as timing.stage_batches does
    train = native.native_train_step(model, batches)
    losses = [train()["loss"] for _ in range(10)]  # Keras's logs, as timing.train_step returns them
    assert all(isinstance(loss, float) and np.isfinite(loss) for loss in losses)
    assert all(later < earlier for earlier, later in itertools.pairwise(losses)), losses
    out = native.native_predict_step(model, batches)()
    assert isinstance(out, np.ndarray) and out.shape == (BATCH, 1) and ((out > 0) & (out < 1)).all()


def test_kernel_name_and_record_fields():
    name = native.native_kernel_name()
    assert ("torch.nn.LSTM" in name) if backends.selected_backend() == "torch" else ("jax.lax.scan" in name)
    info = native.describe()
    assert info["implementation"] == "native" and info["native_kernel"] == name


def test_other_architectures_are_refused():
    import keras

    other = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(50, 4),
                              keras.layers.LSTM(2), keras.layers.Dense(1, activation="sigmoid")])
    other.compile(optimizer="adam", loss="binary_crossentropy")
    with pytest.raises(ValueError, match="native reference implements"):
        native.build_native(other)


def test_other_optimizers_are_refused(model):
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    with pytest.raises(ValueError, match="reproduces Adam"):
        native.build_native(model)
