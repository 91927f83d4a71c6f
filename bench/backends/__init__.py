"""The one place that picks what differs between TensorFlow, JAX and PyTorch: an adapter per backend.

The pattern of Keras's own ``keras/src/backend/__init__.py``: the adapter is picked once, from
KERAS_BACKEND, and only that backend's module (``bench/backends/<name>.py``) is imported; it
holds the backend's ``Adapter`` subclass. Callers ask ``current()`` and never branch on the
backend's name.

This module imports no backend library: ``check_backend``, ``prepare_environment`` and
``is_out_of_memory`` are safe before Keras is imported (and ``prepare_environment`` must run
before). The native references (bench/native/) also import torch and jax themselves, as
framework-specific code by design; everything else in kerasbench reaches its backend through
the adapter.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

from bench.backends.base import Adapter, BackendError, DeviceInfo

__all__ = [
    "BACKENDS", "DEVICES", "Adapter", "BackendError", "DeviceInfo", "check_backend", "configure", "current",
    "is_out_of_memory", "prepare_environment", "selected_backend",
]

BACKENDS = ("tensorflow", "jax", "torch")
DEVICES = ("auto", "cpu", "gpu")
_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}  # what find_spec looks for
_ADAPTERS = {"tensorflow": "TensorFlowAdapter", "jax": "JaxAdapter", "torch": "TorchAdapter"}

_current: Adapter | None = None


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


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure, as each backend reports one (no backend import)."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return (type(exc).__name__ in ("ResourceExhaustedError", "OutOfMemoryError")  # TF, torch
            or "RESOURCE_EXHAUSTED" in text  # XLA (JAX, TF with jit)
            or "out of memory" in text.lower())


def _create() -> Adapter:
    """A new adapter for the selected backend; imports that backend's module (and so its library)."""
    name = selected_backend()
    check_backend(name)
    module = importlib.import_module(f"bench.backends.{name}")
    return getattr(module, _ADAPTERS[name])()


def configure(device: str, threads: int) -> Adapter:
    """Import the selected backend, set its threads, resolve and check the device; the adapter from now on.

    Call ``prepare_environment(device)`` first. Raises ``BackendError`` for ``device="gpu"``
    when the backend sees no GPU.
    """
    global _current
    adapter = _create()
    adapter.configure(device, threads)
    _current = adapter
    return adapter


def current() -> Adapter:
    """The configured adapter; without ``configure`` (unit tests), one created on first use, threads left alone."""
    global _current
    if _current is None:
        _current = _create()
    return _current
