"""The shared model: structure, size and seeded initial weights on the current backend."""

import numpy as np
import pytest

from model import DEFAULT_CONFIG, DEFAULT_PARAM_COUNT, build_model, initialize_weights

pytestmark = pytest.mark.per_backend


@pytest.fixture(scope="module")
def default_model():
    return build_model()


def test_default_parameter_count(default_model):
    assert default_model.count_params() == DEFAULT_PARAM_COUNT == 2_757_761


def test_layers_match_keras_io(default_model):
    kinds = [type(layer).__name__ for layer in default_model.layers]
    assert kinds == ["InputLayer", "Embedding", "Bidirectional", "Bidirectional", "Dense"]
    embedding, first, second, dense = default_model.layers[1:]
    assert (embedding.input_dim, embedding.output_dim) == (20000, 128)
    assert first.forward_layer.units == 64 and first.forward_layer.return_sequences
    assert second.forward_layer.units == 64 and not second.forward_layer.return_sequences
    assert dense.units == 1 and dense.activation.__name__ == "sigmoid"


def test_compiled_like_keras_io(default_model):
    assert default_model.optimizer.__class__.__name__ == "Adam"
    assert default_model.loss == "binary_crossentropy"


def test_defaults_are_keras_io_and_frozen():
    assert (DEFAULT_CONFIG.max_features, DEFAULT_CONFIG.maxlen, DEFAULT_CONFIG.batch_size, DEFAULT_CONFIG.epochs) == (
        20000, 200, 32, 2)
    with pytest.raises(AttributeError):
        DEFAULT_CONFIG.maxlen = 100  # type: ignore[misc]


def test_overrides_change_the_model():
    small = build_model(max_features=1000, embed_dim=8, lstm_units=4)
    # Embedding 1000*8, two BiLSTMs of 4 units, Dense(1).
    expected = 1000 * 8 + 2 * 4 * (8 * 4 + 4 * 4 + 4) + 2 * 4 * (8 * 4 + 4 * 4 + 4) + 9
    assert small.count_params() == expected


def test_initial_weights_are_seeded(default_model):
    initialize_weights(default_model, 7)
    first = [w.copy() for w in default_model.get_weights()]
    initialize_weights(default_model, 7)
    again = default_model.get_weights()
    initialize_weights(default_model, 8)
    other = default_model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])


def test_initial_weights_follow_keras_defaults(default_model):
    initialize_weights(default_model, 0)
    weights = {w.path: np.asarray(w) for w in default_model.weights}
    lstm_bias = next(v for k, v in weights.items() if "lstm" in k and k.endswith("bias"))
    units = lstm_bias.shape[0] // 4
    assert np.all(lstm_bias[units : 2 * units] == 1.0) and np.all(lstm_bias[:units] == 0.0)
    recurrent = next(v for k, v in weights.items() if k.endswith("recurrent_kernel"))
    # Orthogonal: rows of the (64, 256) matrix are orthonormal.
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(recurrent.shape[0]), atol=1e-5)
    embeddings = next(v for k, v in weights.items() if k.endswith("embeddings"))
    assert np.abs(embeddings).max() <= 0.05


def test_variant_switches_reach_the_compiled_model():
    plain = build_model(max_features=100, embed_dim=4, lstm_units=2, jit_compile=False, steps_per_execution=8)
    assert plain.jit_compile is False and plain.steps_per_execution == 8
    mixed = build_model(max_features=100, embed_dim=4, lstm_units=2, dtype_policy="mixed_bfloat16")
    assert mixed.layers[1].dtype_policy.name == "mixed_bfloat16"
    assert mixed.layers[-1].dtype_policy.name == "float32"  # the sigmoid output stays float32
    assert mixed.count_params() == plain.count_params()
