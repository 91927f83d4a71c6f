"""TensorFlow's primitives: ``tf.distribute.MirroredStrategy`` over N devices, ``MultiWorkerMirroredStrategy``
over N processes.

Imported only through the TensorFlow adapter's ``distributed_module`` (bench/distributed/engine.py).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf  # absolute import: the real TensorFlow, not this module

from bench.backends.base import BackendError
from bench.distributed.engine import DataParallel, own_loop
from bench.distributed.layout import ADDRESSES_ENV


class TensorFlowDataParallel(DataParallel):
    """``tf.distribute``: MirroredStrategy over N devices, or MultiWorkerMirroredStrategy over N processes."""

    name = "tf.distribute.MirroredStrategy"
    collectives = "TF's RING collectives (gRPC)"
    local_collectives = "MirroredStrategy's cross-device ops (one process)"
    # Keras 3.15's train_function reduces the step's logs with strategy.reduce(..., axis=0), which fails
    # on scalars under MultiWorkerMirroredStrategy (keras-team/keras#20585, tensorflow/tensorflow#72388).
    # tests/test_engine.py notices the Keras release that fixes it.
    WORKER_STEP_WHY = ("Keras's own train_function fails under MultiWorkerMirroredStrategy in Keras 3.15 "
                       "(keras-team/keras#20585): model.train_step under strategy.run instead")

    def join_processes(self, adapter: Any) -> None:
        if len(self.rank_info.addresses) != self.processes:
            raise BackendError(f"TF_CONFIG needs every worker's address: set {ADDRESSES_ENV} to the host:port of "
                               f"each of the {self.processes} processes, in rank order")
        os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": list(self.rank_info.addresses)},
                                              "task": {"type": "worker", "index": self.rank}})

    def _start(self, adapter: Any) -> None:
        gpu = adapter.device.kind == "gpu"
        self._prepared: set[int] = set()
        if self.rank_info is not None:
            impl = tf.distribute.experimental.CommunicationImplementation
            options = tf.distribute.experimental.CommunicationOptions(implementation=impl.NCCL if gpu else impl.RING)
            self.strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
            self.name = "tf.distribute.MultiWorkerMirroredStrategy"
            self.step_impl = "model.train_step under strategy.run in a tf.function: " + self.WORKER_STEP_WHY
            self.device_names = [str(d) for d in self.strategy.extended.worker_devices]
            return
        n = self.layout.devices
        names = [d.name for d in tf.config.list_logical_devices("GPU" if gpu else "CPU")][:n]
        if len(names) < n:
            raise BackendError(f"--devices {n}: TensorFlow offers {len(names)} devices ({names})")
        self.strategy = tf.distribute.MirroredStrategy(names)
        self.step_impl = ("model.train_function (Keras's compiled step, as fit calls it) on a distributed "
                          "tf.data iterator")
        self.device_names = names

    def scope(self) -> contextlib.AbstractContextManager:
        return self.strategy.scope()

    def _prepare(self, model: Any, x: np.ndarray, y: np.ndarray) -> None:
        """Create the model's loss, metric and optimizer state under the strategy, outside any tf.function.

        What Keras's private ``_symbolic_build`` does before ``fit``, through public calls: a
        distributed variable cannot be created inside the step's tf.function.
        """
        if id(model) in self._prepared:
            return
        with self.strategy.scope():
            xs, ys = tf.constant(x[:1]), tf.constant(y[:1])
            y_pred = model(xs)
            model.compute_loss(x=xs, y=ys, y_pred=y_pred)
            model.compute_metrics(xs, ys, y_pred, sample_weight=None)
            model.optimizer.build(model.trainable_variables)
        model.reset_metrics()
        self._prepared.add(id(model))

    def _distributed(self, x: np.ndarray, y: np.ndarray, repeat: bool) -> Any:
        """This process's rows as per-replica batches, one per local replica and step, through the strategy."""
        per_replica = self._per_replica

        def dataset(context: Any) -> Any:
            ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(per_replica, drop_remainder=True)
            return ds.repeat() if repeat else ds

        return self.strategy.distribute_datasets_from_function(dataset)

    def _function(self, model: Any, train: bool = True) -> Callable:
        """One step per call on a distributed iterator: Keras's train_function where it works, else our own."""
        if self.rank_info is None and train:
            model.make_train_function()
            return model.train_function
        strategy = self.strategy
        step = model.train_step if train else model.test_step

        @tf.function
        def one_step(iterator: Any) -> dict:
            logs = strategy.run(step, args=(next(iterator),))
            return {key: strategy.reduce("MEAN", value, axis=None) for key, value in logs.items()}

        return one_step

    def make_step(self, model: Any, staged: list) -> Callable[[], Any]:
        x = np.concatenate([b[0] for b in staged])
        y = np.concatenate([b[1] for b in staged])
        self._per_replica = len(staged[0][0]) // len(self.device_names)
        self._prepare(model, x, y)
        iterator = iter(self._distributed(x, y, repeat=True))
        function = self._function(model)

        def step() -> dict:
            # Reading the logs back waits for the step's ops (TF runs them before .numpy() returns).
            return {key: float(value) for key, value in function(iterator).items()}

        return step

    def stage(self, x: np.ndarray, y: np.ndarray) -> Any:
        return x, y  # tf.data feeds the replicas (as fit does); the arrays stay on the host until then

    def fit(self, model: Any, train: tuple, val: tuple, local_batch: int, callbacks: list) -> dict:
        self._per_replica = local_batch // len(self.device_names)
        if self.rank_info is None:
            return super().fit(model, train, val, local_batch, callbacks)
        # Several workers: Keras's fit would run its train_function, which fails here (WORKER_STEP_WHY).
        self._prepare(model, *train)
        model.reset_metrics()  # Keras's metrics then hold the epoch's running means, as in fit
        function, iterator = self._function(model), iter(self._distributed(*train, repeat=False))
        logs: dict = {}

        def step() -> Any:
            logs.update(function(iterator))
            return logs["loss"]  # the mean over every replica: the same on every worker

        own_loop(model, callbacks, len(train[0]) // local_batch, step)
        train_logs = {key: float(value) for key, value in logs.items()}
        model.reset_metrics()
        function, iterator = self._function(model, train=False), iter(self._distributed(*val, repeat=False))
        for _ in range(len(val[0]) // local_batch):
            logs.update(function(iterator))
        return {"loss": train_logs["loss"], "accuracy": train_logs["accuracy"], "val_loss": float(logs["loss"]),
                "val_accuracy": float(logs["accuracy"])}

    def gather(self, values: np.ndarray) -> np.ndarray:
        if self.rank_info is None:
            return np.asarray(values, dtype=float)[None]
        row = np.asarray(values, dtype=np.float64)[None]
        local = self.strategy.experimental_distribute_values_from_function(lambda context: tf.constant(row))
        return self.strategy.gather(local, axis=0).numpy()  # one row per replica: one replica per process


DATA_PARALLEL = TensorFlowDataParallel
