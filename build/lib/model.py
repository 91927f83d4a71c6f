"""The one model definition: keras.io's "Bidirectional LSTM on IMDB".

Every benchmark and test builds its model here, so all backends run the same graph.
Only backend-agnostic Keras APIs are used.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

# Keras is imported inside the functions: importing it fixes the backend and starts it, and
# conftest.py must first read the options (e.g. --device cpu hides GPUs) and check the backend.


@dataclass(frozen=True)
class ModelConfig:
    """keras.io defaults; override with ``dataclasses.replace`` or ``build_model(**overrides)``."""

    max_features: int = 20000  # vocabulary size (words ranked by frequency)
    maxlen: int = 200  # tokens per review after padding/truncation
    embed_dim: int = 128
    lstm_units: int = 64
    batch_size: int = 32
    epochs: int = 2
    optimizer: str = "adam"
    loss: str = "binary_crossentropy"
    metric: str = "accuracy"
    # Switches users flip (see bench/variants.py); the defaults are Keras's own.
    jit_compile: bool | str = "auto"
    steps_per_execution: int = 1
    dtype_policy: str = "float32"  # "mixed_bfloat16" / "mixed_float16" for mixed precision

    def replace(self, **overrides: object) -> ModelConfig:
        return dataclasses.replace(self, **overrides)


DEFAULT_CONFIG = ModelConfig()

# Parameter count of the default model (keras.io prints the same summary).
DEFAULT_PARAM_COUNT = 2_757_761


def build_model(config: ModelConfig = DEFAULT_CONFIG, **overrides: object) -> keras.Model:
    """Build and compile the model. Keyword overrides replace ``config`` fields."""
    import keras
    from keras import layers

    cfg = config.replace(**overrides) if overrides else config
    policy = cfg.dtype_policy
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(cfg.max_features, cfg.embed_dim, dtype=policy)(inputs)
    x = layers.Bidirectional(layers.LSTM(cfg.lstm_units, return_sequences=True, dtype=policy), dtype=policy)(x)
    x = layers.Bidirectional(layers.LSTM(cfg.lstm_units, dtype=policy), dtype=policy)(x)
    # The output stays float32 under mixed precision, as Keras's mixed-precision guide advises.
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32")(x)
    model = keras.Model(inputs, outputs, name="bilstm_imdb")
    model.compile(optimizer=cfg.optimizer, loss=cfg.loss, metrics=[cfg.metric], jit_compile=cfg.jit_compile,
                  steps_per_execution=cfg.steps_per_execution)
    return model


def initialize_weights(model: keras.Model, seed: int) -> None:
    """Set the same initial weights on every backend, drawn with NumPy.

    Keras's initializers draw from each backend's own RNG, so one seed gives different weights
    under TensorFlow, JAX and PyTorch. Drawing them here from the distributions Keras uses by
    default (uniform embeddings, Glorot-uniform kernels, orthogonal recurrent kernels, zero
    biases with the LSTM forget gate at one) makes every backend start from the same point, so
    accuracy differences are the backends', not the dice's.
    """
    rng = np.random.default_rng(seed)
    values = []
    for var in model.weights:
        shape = tuple(var.shape)
        name = var.path.rsplit("/", 1)[-1]
        if name == "embeddings":
            value = rng.uniform(-0.05, 0.05, shape)
        elif name == "recurrent_kernel":
            value = _orthogonal(rng, shape)
        elif name == "kernel":
            limit = np.sqrt(6.0 / (shape[0] + shape[1]))
            value = rng.uniform(-limit, limit, shape)
        elif name == "bias" and len(shape) == 1 and shape[0] % 4 == 0 and "lstm" in var.path:
            units = shape[0] // 4
            value = np.zeros(shape)
            value[units : 2 * units] = 1.0  # unit_forget_bias, gate order i, f, c, o
        elif name == "bias":
            value = np.zeros(shape)
        else:
            raise ValueError(f"initialize_weights does not know how to draw {var.path}")
        values.append(value.astype(var.dtype))
    model.set_weights(values)


def _orthogonal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # Same construction as keras.initializers.Orthogonal: QR of a normal matrix, sign-fixed.
    rows, cols = shape
    flat = rng.normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    return q.T if rows < cols else q
