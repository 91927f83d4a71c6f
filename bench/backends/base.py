"""What every backend adapter shares: device resolution, host memory, the LSTM spy, versions.

A subclass (bench/backends/tensorflow.py, jax.py, torch.py) implements only the hooks that
differ: ``_set_threads``, ``_gpu_name``, ``sync``, ``_reset_device_peak``, ``_device_peak``,
and, for torch, ``_install_backend_lstm_spies``. This module imports no backend library, and
Keras only inside the methods that need it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

_MIB = 1 / 2**20


class BackendError(Exception):
    """The backend or device asked for cannot be used; the message says why and the fix."""


@dataclass(frozen=True)
class DeviceInfo:
    """The device a backend runs on, resolved once per process."""

    kind: str  # "cpu" or "gpu"
    name: str  # GPU name, or CPU model name from /proc/cpuinfo

    def as_dict(self) -> dict:
        return {"device": self.kind, "device_name": self.name}


class Adapter:
    """One backend behind one interface; get the selected one from ``bench.backends.current()``."""

    name: ClassVar[str]  # "tensorflow" | "jax" | "torch"
    packages: ClassVar[tuple[str, ...]]  # distributions that may provide it, for ``versions``
    generic_loop: ClassVar[str]  # the loop Keras's generic RNN code runs on this backend
    # Recorded when Keras's fused ``lstm`` returns; None where the subclass records its own paths.
    fused_lstm_label: ClassVar[str | None] = "cudnn"
    # What ``device_peak_mib`` covers, where it is not "since reset_memory_stats".
    device_peak_scope: ClassVar[str | None] = None

    # The spy patches Keras functions, which are process-wide: so is what it saw.
    _lstm_paths: ClassVar[set[str]] = set()

    def __init__(self) -> None:
        self._device: DeviceInfo | None = None

    # --- set-up -----------------------------------------------------------------------------

    def configure(self, device: str, threads: int) -> DeviceInfo:
        """Set thread counts, resolve the device (once) and check it against ``device``."""
        self._set_threads(threads)
        info = self.device
        if device == "gpu" and info.kind != "gpu":
            raise BackendError(
                f"--device gpu was asked for, but the {self.name} backend sees no GPU on this machine. "
                "Use --device cpu (or auto), or install the CUDA build of the backend."
            )
        return info

    @property
    def device(self) -> DeviceInfo:
        """The GPU the backend will use, else the CPU; asked of the backend once, then cached."""
        if self._device is None:
            gpu = self._gpu_name()
            self._device = DeviceInfo("gpu", gpu) if gpu is not None else DeviceInfo("cpu", _cpu_name())
        return self._device

    def versions(self) -> dict:
        """Versions of Keras and this backend's package."""
        found = {"keras": importlib.metadata.version("keras")}
        for package in self.packages:
            try:
                found[self.name] = importlib.metadata.version(package)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        return found

    # --- hooks ------------------------------------------------------------------------------

    def _set_threads(self, threads: int) -> None:
        """Size the backend's CPU thread pools."""
        raise NotImplementedError

    def _gpu_name(self) -> str | None:
        """Name of the first GPU the backend will use, or None."""
        raise NotImplementedError

    def _reset_device_peak(self) -> None:
        """Reset the GPU allocator's peak counter (called only on GPU)."""
        raise NotImplementedError

    def _device_peak(self) -> int | None:
        """The GPU allocator's peak, in bytes, or None where the backend does not report one (GPU only)."""
        raise NotImplementedError

    def _install_backend_lstm_spies(self) -> None:
        """Watch backend-specific LSTM kernels, for a subclass whose ``fused_lstm_label`` is None."""

    # --- running ----------------------------------------------------------------------------

    def to_device(self, array: Any) -> Any:
        """Stage an array on the backend's default device, outside any timed region."""
        import keras

        tensor = keras.ops.convert_to_tensor(array)
        self.sync(tensor)
        return tensor

    def sync(self, value: Any = None) -> None:
        """Wait until the device has finished the work that produced ``value`` (and all queued work)."""
        raise NotImplementedError

    def resolved_jit_compile(self, model: Any) -> bool | str:
        """What ``jit_compile="auto"`` became for this model (XLA for TF/JAX; torch.compile for torch)."""
        return getattr(model, "jit_compile", "unknown")

    # --- memory -----------------------------------------------------------------------------

    def reset_memory_stats(self) -> dict:
        """Reset the device allocator's peak counter; returns the host baseline for ``memory_stats``."""
        if self.device.kind == "gpu":
            self._reset_device_peak()
        return {"rss": _rss_bytes(), "peak_rss": _peak_rss_bytes()}

    def memory_stats(self, baseline: dict) -> dict:
        """Host RSS growth since ``baseline`` and peaks; on GPU the backend allocator's peak, in MiB."""
        stats = {
            "host_rss_growth_mib": round((_rss_bytes() - baseline["rss"]) * _MIB, 1),
            # ru_maxrss cannot be reset: this is the process's peak so far, a ceiling for this benchmark.
            "host_peak_rss_mib": round(_peak_rss_bytes() * _MIB, 1),
        }
        if self.device.kind != "gpu":
            return stats
        peak = self._device_peak()
        if peak is not None:
            stats["device_peak_mib"] = round(peak * _MIB, 1)
            if self.device_peak_scope is not None:
                stats["device_peak_scope"] = self.device_peak_scope
        return stats

    # --- which LSTM implementation ran --------------------------------------------------------
    # Keras picks the LSTM kernel silently (cuDNN, a backend's fused loop, or its generic RNN loop),
    # and the choice changes results several-fold between versions. We record it by watching the
    # calls Keras makes while the model is traced; Keras internals may move, so failures read "unknown".

    def install_lstm_spy(self) -> None:
        """Start recording which LSTM kernel path each traced LSTM layer takes."""
        try:
            from keras.src import backend as kbackend
        except ImportError:
            return
        if getattr(kbackend.lstm, "_kerasbench_spy", False):
            return
        original = kbackend.lstm
        paths = self._lstm_paths
        generic = f"generic ({self.generic_loop})"
        fused = self.fused_lstm_label

        def spy(*args: Any, **kwargs: Any) -> Any:
            try:
                out = original(*args, **kwargs)
            except NotImplementedError:
                paths.add(generic)
                raise
            if fused is not None:
                paths.add(fused)
            return out

        spy._kerasbench_spy = True
        kbackend.lstm = spy
        self._install_backend_lstm_spies()

    def take_lstm_paths(self) -> str:
        """The LSTM kernel paths seen since the last call, e.g. ``"generic (lax.scan)"``."""
        paths = ", ".join(sorted(self._lstm_paths)) or "unknown"
        self._lstm_paths.clear()
        return paths

    def _wrap_lstm_kernel(self, module: Any, attr: str, label: str) -> None:
        """Record ``label`` whenever ``module.attr`` is called (nothing if Keras has no such function)."""
        original: Callable | None = getattr(module, attr, None)
        if original is None:
            return
        paths = self._lstm_paths

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            paths.add(label)
            return original(*args, **kwargs)

        setattr(module, attr, wrapper)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
