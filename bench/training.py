"""Training to accuracy: epochs of ``model.fit`` over identical batches on every backend."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bench import backends
from bench.data import Dataset


class NonFiniteLoss(Exception):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, step: int, loss: float):
        super().__init__(f"training loss became {loss} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.loss = epoch, step, loss


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 1-based, as Keras prints it
    seconds: float  # training plus validation, wall clock
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float

    def as_dict(self) -> dict:
        return asdict(self)


def fit_epoch(model: Any, data: Dataset, epoch: int, batch_size: int, seed: int) -> EpochRecord:
    """Train one epoch (full batches only, in a seeded order) and validate; ``epoch`` is 1-based.

    The order is drawn with NumPy, not by ``fit(shuffle=True)``, so every backend sees the same
    batches. Partial last batches are dropped from both splits: they would retrace on JAX/TF.
    """
    import keras

    n_train = len(data.y_train) // batch_size * batch_size
    n_test = len(data.y_test) // batch_size * batch_size
    order = np.random.default_rng(seed + epoch).permutation(len(data.y_train))[:n_train]

    class CheckLoss(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            loss = float((logs or {}).get("loss", 0.0))
            if not math.isfinite(loss):
                raise NonFiniteLoss(epoch, batch + 1, loss)

    start = time.perf_counter()
    history = model.fit(
        data.x_train[order], data.y_train[order].astype("float32"),
        batch_size=batch_size, epochs=1, shuffle=False, verbose=0,
        validation_data=(data.x_test[:n_test], data.y_test[:n_test].astype("float32")),
        callbacks=[CheckLoss()],
    )
    backends.current().sync()  # fit already read its metrics back; this also drains any queued CUDA work
    seconds = time.perf_counter() - start
    h = {key: float(values[-1]) for key, values in history.history.items()}
    return EpochRecord(epoch, seconds, h["loss"], h["accuracy"], h["val_loss"], h["val_accuracy"])


def time_to_accuracy(epochs: list[EpochRecord], target: float) -> float | None:
    """Training seconds until val_accuracy first reached ``target`` (at epoch ends), else None."""
    elapsed = 0.0
    for record in epochs:
        elapsed += record.seconds
        if record.val_accuracy >= target:
            return elapsed
    return None
