"""JAX's primitives: ``keras.distribution.DataParallel`` over N devices of one process, or over N processes.

Imported only through the JAX adapter's ``distributed_module`` (bench/distributed/engine.py, ``engine_for``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import jax  # absolute import: the real JAX, not this module
import keras
import numpy as np

from bench import timing
from bench.backends.base import BackendError
from bench.distributed.engine import DataParallel


class JaxDataParallel(DataParallel):
    """``keras.distribution.DataParallel``: one process over N devices, or N processes via jax.distributed."""

    name = "keras.distribution.DataParallel"
    step_impl = "model.train_on_batch (Keras's compiled train_function), batch sharded over the DeviceMesh"
    collectives = "XLA's gloo CPU collectives"
    local_collectives = "XLA's all-reduce across the devices of one process"

    def join_processes(self, adapter: Any) -> None:
        # XLA:CPU has no cross-process collectives unless told which to use.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        keras.distribution.initialize(job_addresses=self.rank_info.coordinator, num_processes=self.processes,
                                      process_id=self.rank)

    def _start(self, adapter: Any) -> None:
        devices = jax.devices()
        if self.layout.devices is not None:
            devices = [d for d in devices if d.platform == devices[0].platform][:self.layout.devices]
            if len(devices) < self.layout.devices:
                raise BackendError(f"--devices {self.layout.devices}: JAX offers {len(devices)} devices")
        self.device_names = [str(d) for d in devices]
        # Several processes each feed their own rows (auto_shard_dataset=False), as jax.distributed expects.
        self.distribution = keras.distribution.DataParallel(devices=devices,
                                                            auto_shard_dataset=self.rank_info is None)
        keras.distribution.set_distribution(self.distribution)

    @contextlib.contextmanager
    def single_device(self) -> Iterator[None]:
        keras.distribution.set_distribution(None)
        try:
            with jax.default_device(jax.local_devices()[0]):
                yield
        finally:
            keras.distribution.set_distribution(self.distribution)

    def stage(self, x: np.ndarray, y: np.ndarray) -> Any:
        if self.rank_info is not None:
            return x, y  # this process's rows; train_on_batch assembles the global batch from every process's
        return tuple(keras.distribution.distribute_tensor(a, self.distribution.get_data_layout(a.shape))
                     for a in (x, y))

    def make_step(self, model: Any, staged: list) -> Callable[[], Any]:
        return timing.train_step(model, staged)

    def gather(self, values: np.ndarray) -> np.ndarray:
        if self.rank_info is None:
            return np.asarray(values, dtype=float)[None]
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(np.asarray(values, dtype=np.float32)), dtype=float)


DATA_PARALLEL = JaxDataParallel
