"""The PyTorch adapter; imported only when KERAS_BACKEND is torch (see bench/backends/__init__.py)."""

from __future__ import annotations

import importlib
from typing import Any

import torch  # absolute import: the real PyTorch, not this module

from bench.backends.base import Adapter


class TorchAdapter(Adapter):
    name = "torch"
    packages = ("torch",)
    generic_loop = "python per-timestep loop"
    fused_lstm_label = None  # torch records its own two paths, in _install_backend_lstm_spies

    def _set_threads(self, threads: int) -> None:
        torch.set_num_threads(threads)

    def _gpu_name(self) -> str | None:
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None

    def sync(self, value: Any = None) -> None:
        if self.device.kind == "gpu":
            torch.cuda.synchronize()  # CUDA kernels are queued; the host returns at once

    def _reset_device_peak(self) -> None:
        torch.cuda.reset_peak_memory_stats()

    def _device_peak(self) -> int | None:
        return torch.cuda.max_memory_allocated()

    def _install_backend_lstm_spies(self) -> None:
        try:
            # import_module: the package re-exports a function named `rnn` over the submodule.
            torch_rnn = importlib.import_module("keras.src.backend.torch.rnn")
        except ImportError:
            return
        self._wrap_lstm_kernel(torch_rnn, "_cudnn_lstm", "cudnn")
        self._wrap_lstm_kernel(torch_rnn, "_fallback_lstm", "fused input projection + python per-timestep loop")
