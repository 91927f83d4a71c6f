"""Native references: the benchmark model written directly in PyTorch and in JAX, without Keras.

Timing these next to Keras's own steps gives "Keras on backend / native" per backend: what Keras's
abstraction costs over code a user would write by hand for that framework. Each reference starts
from the weights of the Keras model it is given and does the same math as Keras:

* the same layers: Embedding -> Bidirectional LSTM (sequences) -> Bidirectional LSTM (last
  state) -> Dense(1, sigmoid); backward directions read the sequence reversed and, as Keras's
  Bidirectional does, their sequence output is re-reversed and concatenated after the forward one;
* the same loss: binary cross-entropy on the sigmoid output, clipped to [eps, 1 - eps], batch mean;
* the same optimizer: Keras's Adam update, ``v -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``
  (settings read from the compiled Keras optimizer).

The references (torch.py, jax.py) take Keras's ``train_on_batch`` / ``predict_on_batch``
signatures, so that bench/timing.py times them with the very closures it times Keras with.
TensorFlow has no native reference: raw TF ops would not be what a TensorFlow user runs (that is
tf.keras, i.e. Keras itself). Importing this package imports neither torch nor jax.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from bench import backends, timing
from bench.native.weights import adam_settings, keras_epsilon, keras_weights

__all__ = [
    "NativeModel", "build_native", "describe", "is_supported", "native_kernel_name", "native_predict_step",
    "native_train_step", "why_unsupported",
]


class NativeModel(Protocol):
    """What both references offer; batches are staged once with ``stage`` before any timing."""

    def stage(self, x: Any, y: Any) -> tuple[Any, Any]: ...

    def train_on_batch(self, x: Any, y: Any, return_dict: bool = False) -> dict[str, float] | float: ...

    def predict_on_batch(self, x: Any) -> np.ndarray: ...

    def get_weights(self) -> list[np.ndarray]: ...

    def phase_steps(self, x: Any, y: Any) -> dict[str, Callable[[], Any]]: ...


def why_unsupported() -> str | None:
    """Why the current backend has no native reference (its adapter's reason), or None when it has one."""
    return backends.current().lacks("native_module")


def is_supported() -> bool:
    """Whether the current backend has a native reference."""
    return why_unsupported() is None


def _reference() -> ModuleType:
    """The current backend's reference (``Native``, ``kernel_name``, ``JIT_COMPILE``), as its adapter names it."""
    return backends.implementation(backends.current(), "native")


def build_native(keras_model: Any) -> NativeModel:
    """A native copy of ``keras_model`` (same weights, same optimizer settings) for the current backend."""
    reference = _reference()
    return reference.Native(keras_weights(keras_model), adam_settings(keras_model), keras_epsilon())


def native_train_step(keras_model: Any, batches: list[tuple[Any, Any]]) -> Callable[[], dict]:
    """One native optimizer step per call, cycling through ``batches``: ``timing.train_step`` on the reference."""
    native = build_native(keras_model)
    return timing.train_step(native, [native.stage(x, y) for x, y in batches])


def native_predict_step(keras_model: Any, batches: list[tuple[Any, Any]]) -> Callable[[], np.ndarray]:
    """One native inference batch per call: ``timing.predict_step`` on the reference."""
    native = build_native(keras_model)
    return timing.predict_step(native, [native.stage(x, y) for x, y in batches])


def native_kernel_name() -> str:
    """What runs the LSTMs in the current backend's reference, e.g. ``torch.nn.LSTM (cuDNN)``."""
    return _reference().kernel_name()


def describe() -> dict:
    """What a native benchmark records in extra_info (overriding the Keras model's jit/LSTM fields)."""
    reference = _reference()
    kernel = reference.kernel_name()
    return {"implementation": "native", "native_kernel": kernel, "lstm_kernel": kernel,
            "jit_compile": reference.JIT_COMPILE}
