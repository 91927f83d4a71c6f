"""The one place that picks what differs between TensorFlow, JAX and PyTorch: an adapter per backend.

The pattern of Keras's own ``keras/src/backend/__init__.py``: the adapter is picked once, from
KERAS_BACKEND, and only that backend's module (``bench/backends/<name>.py``) is imported; it
holds the backend's ``Adapter`` subclass. Callers ask ``current()`` and never branch on the
backend's name.

This module imports no backend library: ``check_backend``, ``prepare_environment`` and
``is_out_of_memory`` are safe before Keras is imported (and ``prepare_environment`` must run
before). The data-parallel engines (bench/distributed/<framework>.py) and the native references
(bench/native/) also import their framework, as framework-specific code by design; the adapter
names them (``implementation``), and everything else in kerasbench reaches its backend through
the adapter.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Callable
from types import ModuleType

from bench.backends.base import (
    GPU_INSTALL,
    Adapter,
    BackendError,
    DeviceInfo,
    KernelCheck,
    StepCount,
    compare_kernels,
    kernel_family,
)

__all__ = [
    "BACKENDS",
    "DEVICES",
    "GPU_INSTALL",
    "Adapter",
    "BackendError",
    "DeviceInfo",
    "KernelCheck",
    "StepCount",
    "check_backend",
    "compare_kernels",
    "configure",
    "current",
    "implementation",
    "is_out_of_memory",
    "keep_out",
    "kernel_family",
    "prepare_environment",
    "selected_backend",
]

BACKENDS = ("tensorflow", "jax", "torch")
DEVICES = ("auto", "cpu", "gpu")
_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}  # what find_spec looks for
_ADAPTERS = {"tensorflow": "TensorFlowAdapter", "jax": "JaxAdapter", "torch": "TorchAdapter"}
# Libraries a backend's process must not load. Keras imports TensorFlow whenever it is installed
# (keras.utils.set_random_seed, and serialize_keras_object, which Bidirectional calls in its
# constructor, both ask `tf.available`): a second framework's thread pools, and on GPU its CUDA
# stack, would share the process being timed.
_KEEP_OUT = {"jax": ("tensorflow",), "torch": ("tensorflow",)}

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
    if device == "gpu":
        # Named platforms must start: JAX then raises where its CUDA plugin fails instead of going on with the CPU.
        os.environ.setdefault("JAX_PLATFORMS", "cuda,cpu")
    # TF's start-up chatter hides real errors; on --device gpu its warnings stay, as "Cannot dlopen some GPU
    # libraries" is one (level 2 would hide it and leave "no GPU" unexplained).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1" if device == "gpu" else "2")
    keep_out(_KEEP_OUT.get(selected_backend(), ()), selected_backend())


class _Refused(importlib.abc.Loader):
    """The loader of a library kept out of this process: importing it raises ModuleNotFoundError."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        raise ModuleNotFoundError(self.reason, name=spec.name)

    def exec_module(self, module: ModuleType) -> None:  # never reached: create_module refuses
        raise ModuleNotFoundError(self.reason, name=module.__name__)


class _KeepOut(importlib.abc.MetaPathFinder):
    """Finds the kept-out libraries as usual (``find_spec`` still answers, as torch._dynamo asks it)
    but hands back a loader that refuses, so ``import`` fails as if they were not installed."""

    def __init__(self, names: tuple[str, ...], backend: str) -> None:
        self.names = names
        self.reason = (f"kerasbench keeps {{name}} out of this {backend} process: a second framework's threads (and "
                       "CUDA stack) would share the process being timed. Keras then behaves as if it were not "
                       "installed.")

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        top = fullname.partition(".")[0]
        if top not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)  # type: ignore[arg-type]
        if spec is not None:
            spec.loader = _Refused(self.reason.format(name=top))
        return spec


def keep_out(names: tuple[str, ...], backend: str) -> None:
    """Make ``import NAME`` fail in this process for each of ``names`` (idempotent).

    Raises BackendError when one of them is imported already: too late to keep it out.
    """
    if not names:
        return
    loaded = [name for name in names if name in sys.modules]
    if loaded:
        raise BackendError(f"{', '.join(loaded)} is already imported in this {backend} process; kerasbench must "
                           "set up its backend before anything imports another framework.")
    if not any(isinstance(finder, _KeepOut) for finder in sys.meta_path):
        sys.meta_path.insert(0, _KeepOut(names, backend))


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


def implementation(adapter: Adapter | type[Adapter], part: str) -> ModuleType:
    """The module that implements ``part`` for ``adapter``'s backend, as its class names it (``<part>_module``).

    ``part`` is "distributed" (its data-parallel engine: ``DATA_PARALLEL``) or "native" (its native
    reference: ``Native``, ``kernel_name``, ``JIT_COMPILE``). The one lookup keyed by the adapter;
    NotImplementedError with the adapter's reason where it has none.
    """
    why = adapter.lacks(f"{part}_module")
    if why:
        raise NotImplementedError(why)
    return importlib.import_module(getattr(adapter, f"{part}_module"))


def configure(device: str, threads: int, *, flush_denormals: bool = False, strict_fp32: bool = False,
              before_start: Callable[[Adapter], None] | None = None) -> Adapter:
    """Import the selected backend, set its threads, resolve and check the device; the adapter from now on.

    Call ``prepare_environment(device)`` first. Raises ``BackendError`` for ``device="gpu``
    when the backend sees no GPU (naming the install command where the build is CPU-only).
    ``flush_denormals`` sets the backend's flush-to-zero mode (the flush-denormals variant);
    ``strict_fp32`` turns its TF32 modes off (the strict-fp32 variant).
    ``before_start(adapter)`` runs once the backend is imported but before it starts (simulated
    devices and process groups of bench/distributed/ must be set up then).
    """
    global _current
    adapter = _create()
    if before_start is not None:
        before_start(adapter)
    adapter.configure(device, threads, flush_denormals=flush_denormals, strict_fp32=strict_fp32)
    _current = adapter
    return adapter


def current() -> Adapter:
    """The configured adapter; without ``configure`` (unit tests), one created on first use, threads left alone."""
    global _current
    if _current is None:
        _current = _create()
    return _current
