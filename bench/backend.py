"""Everything that differs between TensorFlow, JAX and PyTorch, behind one small interface.

Nothing else in kerasbench imports a backend library. Functions that must run before Keras is
imported (``check_backend``, ``prepare_environment``) import nothing themselves.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
from collections.abc import Callable
from typing import Any

import numpy as np

BACKENDS = ("tensorflow", "jax", "torch")
DEVICES = ("auto", "cpu", "gpu")
_PACKAGES = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "jax": ("jax",), "torch": ("torch",)}
_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


class BackendError(Exception):
    """The backend or device asked for cannot be used; the message says why and the fix."""


def selected_backend() -> str:
    """The backend Keras will use: KERAS_BACKEND, else Keras's own default."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def check_backend(name: str) -> None:
    """Fail clearly for an unknown backend or one whose package is missing (before importing Keras)."""
    if name not in BACKENDS:
        raise BackendError(f"unknown Keras backend {name!r} (KERAS_BACKEND); choose one of {', '.join(BACKENDS)}.")
    if importlib.util.find_spec(_MODULES[name]) is None:
        raise BackendError(
            f"the {name} backend is selected but its package is not installed in this Python "
            f"({os.sys.executable}). Install it with `pip install -e '.[{name}]' -c constraints.txt`, "
            f"or run `make venv`."
        )


def prepare_environment(device: str) -> None:
    """Hide GPUs from every backend for ``--device cpu``; must run before any backend import."""
    if device not in DEVICES:
        raise BackendError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}.")
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's start-up chatter hides real errors


def configure(device: str, threads: int) -> dict:
    """Import the backend, check the device, set thread counts; returns what was resolved."""
    backend = selected_backend()
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    # JAX (XLA:CPU) sizes its own thread pool to the machine; it cannot be set after import.
    gpu = gpu_name()
    if device == "gpu" and gpu is None:
        raise BackendError(
            f"--device gpu was asked for, but the {backend} backend sees no GPU on this machine. "
            "Use --device cpu (or auto), or install the CUDA build of the backend."
        )
    return device_info()


def gpu_name() -> str | None:
    """Name of the first GPU the current backend will use, or None."""
    backend = selected_backend()
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    if backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        return gpus[0].device_kind if gpus else None
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)


def device_info() -> dict:
    gpu = gpu_name()
    if gpu is not None:
        return {"device": "gpu", "device_name": gpu}
    return {"device": "cpu", "device_name": _cpu_name()}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict:
    """Versions of Keras and the selected backend's package."""
    backend = selected_backend()
    found = {"keras": importlib.metadata.version("keras")}
    for package in _PACKAGES[backend]:
        try:
            found[backend] = importlib.metadata.version(package)
            break
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def to_device(array: np.ndarray) -> Any:
    """Stage an array on the backend's default device, outside any timed region."""
    import keras

    tensor = keras.ops.convert_to_tensor(array)
    sync(tensor)
    return tensor


def sync(value: Any = None) -> None:
    """Wait until the device has finished the work that produced ``value`` (and all queued work)."""
    backend = selected_backend()
    if backend == "jax":
        import jax

        jax.block_until_ready(value)  # JAX dispatches asynchronously
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()  # CUDA kernels are queued; the host returns at once
    elif value is not None and hasattr(value, "numpy"):
        value.numpy()  # TensorFlow's eager ops finish before .numpy() returns


# --- which LSTM implementation ran ------------------------------------------------------------
# Keras picks the LSTM kernel silently (cuDNN, a backend's fused loop, or its generic RNN loop),
# and the choice changes results several-fold between versions. We record it by watching the
# calls Keras makes while the model is traced; Keras internals may move, so failures read "unknown".

_GENERIC_LOOP = {"tensorflow": "tf.while_loop", "jax": "lax.scan", "torch": "python per-timestep loop"}
_lstm_paths: set[str] = set()


def install_lstm_spy() -> None:
    """Start recording which LSTM kernel path each traced LSTM layer takes."""
    try:
        from keras.src import backend as kbackend
    except ImportError:
        return
    if getattr(kbackend.lstm, "_kerasbench_spy", False):
        return
    name = selected_backend()
    original = kbackend.lstm

    def spy(*args: Any, **kwargs: Any) -> Any:
        try:
            out = original(*args, **kwargs)
        except NotImplementedError:
            _lstm_paths.add(f"generic ({_GENERIC_LOOP[name]})")
            raise
        if name != "torch":  # torch records its own two paths below
            _lstm_paths.add("cudnn")
        return out

    spy._kerasbench_spy = True
    kbackend.lstm = spy
    if name == "torch":
        try:
            # import_module: the package re-exports a function named `rnn` over the submodule.
            torch_rnn = importlib.import_module("keras.src.backend.torch.rnn")
        except ImportError:
            return
        _wrap(torch_rnn, "_cudnn_lstm", "cudnn")
        _wrap(torch_rnn, "_fallback_lstm", "fused input projection + python per-timestep loop")


def _wrap(module: Any, attr: str, label: str) -> None:
    original: Callable | None = getattr(module, attr, None)
    if original is None:
        return

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _lstm_paths.add(label)
        return original(*args, **kwargs)

    setattr(module, attr, wrapper)


def take_lstm_paths() -> str:
    """The LSTM kernel paths seen since the last call, e.g. ``"generic (lax.scan)"``."""
    paths = ", ".join(sorted(_lstm_paths)) or "unknown"
    _lstm_paths.clear()
    return paths


def resolved_jit_compile(model: Any) -> bool | str:
    """What ``jit_compile="auto"`` became for this model (XLA for TF/JAX; torch.compile for torch)."""
    return getattr(model, "jit_compile", "unknown")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure, as each backend reports one."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return (type(exc).__name__ in ("ResourceExhaustedError", "OutOfMemoryError")  # TF, torch
            or "RESOURCE_EXHAUSTED" in text  # XLA (JAX, TF with jit)
            or "out of memory" in text.lower())


# --- memory ----------------------------------------------------------------------------------

def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def reset_memory_stats() -> dict:
    """Reset the device allocator's peak counter; returns the host baseline for ``memory_stats``."""
    backend = selected_backend()
    if gpu_name() is not None:
        if backend == "torch":
            import torch

            torch.cuda.reset_peak_memory_stats()
        elif backend == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.reset_memory_stats("GPU:0")
        # JAX has no reset: its peak_bytes_in_use is for the process's lifetime.
    return {"rss": _rss_bytes(), "peak_rss": _peak_rss_bytes()}


def memory_stats(baseline: dict) -> dict:
    """Host RSS growth since ``baseline`` and peaks; on GPU the backend allocator's peak, in MiB."""
    mib = 1 / 2**20
    stats = {
        "host_rss_growth_mib": round((_rss_bytes() - baseline["rss"]) * mib, 1),
        # ru_maxrss cannot be reset: this is the process's peak so far, a ceiling for this benchmark.
        "host_peak_rss_mib": round(_peak_rss_bytes() * mib, 1),
    }
    if gpu_name() is None:
        return stats
    backend = selected_backend()
    if backend == "torch":
        import torch

        stats["device_peak_mib"] = round(torch.cuda.max_memory_allocated() * mib, 1)
    elif backend == "jax":
        import jax

        device_stats = jax.devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in device_stats:
            stats["device_peak_mib"] = round(device_stats["peak_bytes_in_use"] * mib, 1)
            stats["device_peak_scope"] = "process lifetime"
    else:
        import tensorflow as tf

        stats["device_peak_mib"] = round(tf.config.experimental.get_memory_info("GPU:0")["peak"] * mib, 1)
    return stats
