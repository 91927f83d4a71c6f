"""Training to accuracy: epochs over identical batches on every backend, one loop for one device and N."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
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


class OneDevice:
    """What an epoch runs on without a data-parallel engine: every row of each batch here, through ``fit``.

    A data-parallel engine (bench/distributed/engine.py) supplies what differs: the global batch,
    this process's rows of it, whether its processes must stop in lockstep, and how the epoch's
    steps run. Everything else of an epoch is ``fit_epoch``'s, the same for one device and N.
    """

    lockstep = False  # several processes must all stop at the same step (their collectives pair up)

    def global_batch(self, batch_size: int) -> int:
        return batch_size

    def local_rows(self, global_batch: int) -> slice:
        """This process's rows of each global batch."""
        return slice(0, global_batch)

    def fit(self, model: Any, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
            local_batch: int, callbacks: list) -> dict:
        """One epoch over ``train`` (in order), then validation; loss, accuracy, val_loss and val_accuracy."""
        history = model.fit(*train, batch_size=local_batch, epochs=1, shuffle=False, verbose=0,
                            validation_data=val, callbacks=callbacks)
        return last_logs(history)


def last_logs(history: Any) -> dict:
    """The epoch's loss, accuracy, val_loss and val_accuracy from a ``fit`` History."""
    return {key: float(history.history[key][-1]) for key in ("loss", "accuracy", "val_loss", "val_accuracy")}


def batch_order(samples: int, seed: int, epoch: int) -> np.ndarray:
    """The order an epoch visits the training rows in: drawn with NumPy, the same on every backend and layout."""
    return np.random.default_rng(seed + epoch).permutation(samples)


def fit_epoch(model: Any, data: Dataset, epoch: int, batch_size: int, seed: int,
              progress: Progress | None = None, engine: OneDevice | None = None) -> EpochRecord:
    """Train one epoch (full batches only, in a seeded order) and validate; ``epoch`` is 1-based.

    The order is drawn with NumPy, not by ``fit(shuffle=True)``, so every backend sees the same
    batches. Partial last batches are dropped from both splits: they would retrace on JAX/TF.
    With a data-parallel ``engine`` the batches are global ones (``--scaling``), each process
    trains on its rows of each, and the engine runs the steps; the order, the NaN check (which
    stops training at the first non-finite loss) and the clock are the same as on one device.
    """
    engine = engine or OneDevice()
    global_batch = engine.global_batch(batch_size)
    n_train = len(data.y_train) // global_batch * global_batch
    n_test = len(data.y_test) // global_batch * global_batch
    if n_train < global_batch or n_test < global_batch:
        raise ValueError(f"batch {global_batch} is larger than the data ({len(data.y_train)} train, "
                         f"{len(data.y_test)} validation reviews)")
    order = batch_order(len(data.y_train), seed, epoch)[:n_train]
    rows = engine.local_rows(global_batch)

    def local(a: np.ndarray) -> np.ndarray:
        """This process's rows of each global batch of ``a``, batch after batch."""
        return a.reshape(-1, global_batch, *a.shape[1:])[:, rows].reshape(-1, *a.shape[1:])

    train = local(data.x_train[order]), local(data.y_train[order].astype("float32"))
    val = local(data.x_test[:n_test]), local(data.y_test[:n_test].astype("float32"))
    check = loss_check(epoch, lockstep=engine.lockstep)
    callbacks = [check, *([progress.callback(epoch)] if progress else [])]
    start = time.perf_counter()
    logs = engine.fit(model, train, val, len(range(global_batch)[rows]), callbacks)
    backends.current().sync()  # fit already read its metrics back; this also drains any queued CUDA work
    seconds = time.perf_counter() - start
    check.raise_if_failed()
    return EpochRecord(epoch, seconds, logs["loss"], logs["accuracy"], logs["val_loss"], logs["val_accuracy"])


def loss_check(epoch: int, lockstep: bool = False) -> Any:
    """A Keras callback that stops ``fit`` at the first non-finite training loss of epoch ``epoch`` (1-based).

    It is ``async_safe``: on backends Keras calls thread-safe (JAX, PyTorch), batch-end callbacks
    then run on Keras's callback thread pool and the training loop does not wait for the loss to be
    read back after each step (Keras 3.15, callbacks/callback_list.py: a callback that overrides
    ``on_train_batch_end`` without ``async_safe`` turns that off for every callback, and each step
    then ends in a device sync). On TensorFlow Keras dispatches callbacks in the loop either way.
    As threads may finish out of order, the earliest bad step is kept; ``fit`` is asked to stop,
    and ``raise_if_failed`` raises ``NonFiniteLoss`` naming that epoch and step once ``fit`` returned.

    With ``lockstep`` (several processes, whose losses are the same global value) it is not
    ``async_safe``: the check then runs in the loop after each step, so every process stops at the
    same step; stopping one step apart would leave a collective of the other waiting forever.
    """
    import keras

    class LossCheck(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.async_safe = not lockstep
            self._lock = threading.Lock()
            self._fitting: Any = None
            self.failure: NonFiniteLoss | None = None

        def set_model(self, model: Any) -> None:
            super().set_model(model)
            # Kept here because ``self.model`` syncs JAX's training state into the variables: from
            # Keras's callback thread that would race the loop, which donates those buffers.
            self._fitting = model

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            loss = float((logs or {}).get("loss", 0.0))
            if math.isfinite(loss):
                return
            with self._lock:
                if self.failure is None or batch + 1 < self.failure.step:
                    self.failure = NonFiniteLoss(epoch, batch + 1, loss)
            self._fitting.stop_training = True

        def raise_if_failed(self) -> None:
            if self.failure is not None:
                raise self.failure

    return LossCheck()


def time_to_accuracy(epochs: list[EpochRecord], target: float) -> float | None:
    """Training seconds until val_accuracy first reached ``target`` (at epoch ends), else None."""
    elapsed = 0.0
    for record in epochs:
        elapsed += record.seconds
        if record.val_accuracy >= target:
            return elapsed
    return None


# ------------------------------------------------------------------------------------------ progress

PROGRESS_PREFIX = "kerasbench progress:"  # bench/runner.py forwards the lines that start with it
PROGRESS_EVERY_S = 1.0


def duration_text(seconds: float) -> str:
    """'45 s', '3 min 05 s', '1 h 02 min'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Epoch, step, loss and time left of an accuracy run, as one line at most every ``every_s`` seconds.

    Keras calls it after every batch (``callback``), from a worker thread where the backend allows
    it (its ``async_safe`` callbacks), so the training loop does not wait for it; between lines it
    only reads a clock. The time left assumes the remaining training steps go at the pace of those
    done so far (validation of finished epochs included in that pace).
    """

    def __init__(self, write: Callable[[str], None], epochs: int, label: str = "",
                 every_s: float = PROGRESS_EVERY_S, clock: Callable[[], float] = time.monotonic):
        self.write, self.epochs, self.label, self.every_s, self.clock = write, epochs, label, every_s, clock
        self._lock = threading.Lock()  # Keras may run several batch-end callbacks at once
        self._started: float | None = None
        self._last_line = -math.inf
        self._epoch = self._steps = self._step = self._validated = 0
        self._loss: float | None = None

    def begin_epoch(self, epoch: int, steps: int) -> None:
        with self._lock:
            if self._started is None:
                self._started = self.clock()
            self._epoch, self._steps, self._step, self._validated = epoch, steps, 0, 0

    def train_step(self, step: int, loss: float | None) -> None:
        """Training batch ``step`` (1-based) of the current epoch ended with ``loss``."""
        with self._lock:
            if step >= self._step:  # worker threads may finish out of order
                self._step, self._loss = step, loss
            self._maybe_write()

    def validation_step(self, step: int) -> None:
        with self._lock:
            self._validated = max(self._validated, step)
            self._maybe_write()

    def line(self) -> str:
        """The progress line as it stands."""
        parts = [PROGRESS_PREFIX + (f" {self.label}" if self.label else ""), f"epoch {self._epoch}/{self.epochs}"]
        if self._validated:
            parts.append(f"validating batch {self._validated}")
        else:
            parts.append(f"step {self._step}/{self._steps or '?'}")
        if self._loss is not None:
            parts.append(f"loss {self._loss:.4f}")
        done = (self._epoch - 1) * self._steps + self._step
        total = self.epochs * self._steps
        if self._started is not None and done > 0 and total:
            left = (self.clock() - self._started) / done * (total - done)
            parts.append(f"~{duration_text(left)} left")
        return " · ".join(parts)

    def _maybe_write(self) -> None:
        now = self.clock()
        if now - self._last_line < self.every_s:
            return
        self._last_line = now
        with contextlib.suppress(OSError):  # a closed terminal or pipe must not end a training run
            self.write(self.line())

    def callback(self, epoch: int) -> Any:
        """This progress as a Keras callback for the ``fit`` of epoch ``epoch`` (1-based)."""
        import keras

        progress = self

        class ProgressCallback(keras.callbacks.Callback):
            # Keras dispatches batch-end calls of async-safe callbacks to a thread pool (on backends
            # that are thread-safe), so the loop does not block on reading the loss back each step.
            async_safe = True

            def on_train_begin(self, logs: dict | None = None) -> None:
                progress.begin_epoch(epoch, int(self.params.get("steps") or 0))

            def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
                loss = (logs or {}).get("loss")
                progress.train_step(batch + 1, None if loss is None else float(loss))

            def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
                progress.validation_step(batch + 1)

        return ProgressCallback()
