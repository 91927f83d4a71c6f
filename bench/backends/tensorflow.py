"""The TensorFlow adapter; imported only when KERAS_BACKEND is tensorflow (see bench/backends/__init__.py)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf  # absolute import: the real TensorFlow, not this module

from bench.backends.base import Adapter


class TensorFlowAdapter(Adapter):
    name = "tensorflow"
    packages = ("tensorflow", "tensorflow-cpu")
    generic_loop = "tf.while_loop"

    def _set_threads(self, threads: int) -> None:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)

    def _gpu_name(self) -> str | None:
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)

    def sync(self, value: Any = None) -> None:
        if value is not None and hasattr(value, "numpy"):
            value.numpy()  # TensorFlow's eager ops finish before .numpy() returns

    def _reset_device_peak(self) -> None:
        tf.config.experimental.reset_memory_stats("GPU:0")

    def _device_peak(self) -> int | None:
        return tf.config.experimental.get_memory_info("GPU:0")["peak"]
