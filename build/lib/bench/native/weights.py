"""The Keras model's weights and optimizer settings, read once for both native references.

Framework-free (NumPy and Keras only), so that the PyTorch and JAX references start from exactly
the same numbers and the checks that the model is the architecture they implement live in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# One direction of one LSTM layer, in Keras's layout: kernel (input_dim, 4 * units),
# recurrent_kernel (units, 4 * units), bias (4 * units,), gates in the order i, f, c, o.
LstmWeights = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class KerasWeights:
    """The Keras model's weights as NumPy copies, grouped by layer, in Keras's layout."""

    embeddings: np.ndarray  # (max_features, embed_dim)
    lstm1: tuple[LstmWeights, LstmWeights]  # (forward, backward)
    lstm2: tuple[LstmWeights, LstmWeights]
    dense: tuple[np.ndarray, np.ndarray]  # kernel (2 * units, 1), bias (1,)


@dataclass(frozen=True)
class AdamSettings:
    learning_rate: float
    beta_1: float
    beta_2: float
    epsilon: float


def keras_weights(keras_model: Any) -> KerasWeights:
    """Copy the weights out of the benchmark model, checking it is the architecture the references implement."""
    from keras import layers, ops

    parts = [layer for layer in keras_model.layers if layer.weights]
    kinds = [type(layer) for layer in parts]
    expected = [layers.Embedding, layers.Bidirectional, layers.Bidirectional, layers.Dense]
    if kinds != expected:
        raise ValueError(f"the native reference implements {[k.__name__ for k in expected]}, "
                         f"not {[k.__name__ for k in kinds]}")
    embedding, first, second, dense = parts
    if embedding.mask_zero or dense.activation.__name__ != "sigmoid" or dense.units != 1:
        raise ValueError("the native reference needs an unmasked Embedding and a Dense(1, sigmoid) output")

    def copy(variable: Any) -> np.ndarray:
        # A real copy: on CPU, torch's numpy() shares memory with the Keras variable it came from.
        return np.array(ops.convert_to_numpy(variable), dtype=np.float32, copy=True)

    def lstm(bidirectional: Any, return_sequences: bool) -> tuple[LstmWeights, LstmWeights]:
        if bidirectional.merge_mode != "concat":
            raise ValueError("the native reference concatenates the two directions (merge_mode='concat')")
        directions = []
        for layer in (bidirectional.forward_layer, bidirectional.backward_layer):
            cell = layer.cell
            if (layer.return_sequences != return_sequences or not cell.use_bias or cell.dropout
                    or cell.recurrent_dropout or cell.activation.__name__ != "tanh"
                    or cell.recurrent_activation.__name__ != "sigmoid"):
                raise ValueError(f"{layer.name}: the native reference implements keras.layers.LSTM's defaults")
            directions.append((copy(cell.kernel), copy(cell.recurrent_kernel), copy(cell.bias)))
        return directions[0], directions[1]

    return KerasWeights(copy(embedding.embeddings), lstm(first, True), lstm(second, False),
                        (copy(dense.kernel), copy(dense.bias)))


def adam_settings(keras_model: Any) -> AdamSettings:
    """The compiled Keras optimizer's settings; only plain Adam is reproduced natively."""
    import keras

    opt = keras_model.optimizer
    if not isinstance(opt, keras.optimizers.Adam) or opt.amsgrad:
        raise ValueError(f"the native reference reproduces Adam, not {type(opt).__name__}")
    if opt.weight_decay or opt.clipnorm or opt.clipvalue or opt.global_clipnorm or opt.use_ema:
        raise ValueError("the native reference reproduces plain Adam (no weight decay, clipping or EMA)")
    lr = float(keras.ops.convert_to_numpy(opt.learning_rate))
    return AdamSettings(lr, float(opt.beta_1), float(opt.beta_2), float(opt.epsilon))


def keras_epsilon() -> float:
    """Keras clips probabilities to [eps, 1 - eps] in binary cross-entropy; the references clip the same."""
    import keras

    return float(keras.config.epsilon())
