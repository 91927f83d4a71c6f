"""The JAX adapter; imported only when KERAS_BACKEND is jax (see bench/backends/__init__.py)."""

from __future__ import annotations

from typing import Any

import jax  # absolute import: the real JAX, not this module

from bench.backends.base import Adapter


class JaxAdapter(Adapter):
    name = "jax"
    packages = ("jax",)
    generic_loop = "lax.scan"
    # JAX has no reset: its peak_bytes_in_use is for the process's lifetime.
    device_peak_scope = "process lifetime"

    def _set_threads(self, threads: int) -> None:
        """Nothing: JAX (XLA:CPU) sizes its own thread pool to the machine; it cannot be set after import."""

    def _gpu_name(self) -> str | None:
        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        return gpus[0].device_kind if gpus else None

    def sync(self, value: Any = None) -> None:
        jax.block_until_ready(value)  # JAX dispatches asynchronously

    def _reset_device_peak(self) -> None:
        """Nothing: JAX has no reset (see ``device_peak_scope``)."""

    def _device_peak(self) -> int | None:
        return (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
