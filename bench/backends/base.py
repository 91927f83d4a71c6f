"""What every backend adapter shares: device resolution, host memory, the LSTM kernel, versions, settings.

A subclass (bench/backends/tensorflow.py, jax.py, torch.py) implements only the hooks that
differ: ``_set_threads``, ``_thread_settings``, ``_set_flush_denormals``, ``_denormal_probe``,
``_matmul_precision``, ``_gpu_name``, ``gpu_support``, ``device_facts``, ``sync``,
``_reset_device_peak``, ``_device_peak``, ``_program_kernel`` (the cross-check of the LSTM
kernel from the executed program) and, for torch, ``_install_backend_lstm_spies`` and
``_traced_on_meta``. This module imports no backend library, and Keras only inside the methods
that need it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from bench.fingerprint import cpu_model, mib
from bench.results import Precision

# How to install the GPU set; named wherever a CPU-only build meets a GPU request.
GPU_INSTALL = ("`make venv-gpu` (one venv per CUDA major: .venv-gpu-tf for TensorFlow from constraints-gpu-tf.txt "
               "and the extra gpu-tf, .venv-gpu for JAX and PyTorch from constraints-gpu-jax-torch.txt and the extra "
               "gpu-jax-torch)")


class BackendError(Exception):
    """The backend or device asked for cannot be used; the message says why and the fix."""


@dataclass(frozen=True)
class KernelCheck:
    """The LSTM kernel the spy saw, against what the executed program shows.

    ``observed`` reads "<family>: <evidence>" (e.g. "loop: 800 aten::mm in one forward pass of 200
    timesteps") or "not checked: <why>"; ``verdict`` is "agrees", "MISMATCH: ..." or "not checked: ...";
    ``family`` is the kernel family that ran (``kernel_family``): the program's where it was checked.
    """

    observed: str
    verdict: str
    family: str


def kernel_family(label: str | None) -> str:
    """The family of an LSTM kernel label: cudnn, cuda, onednn, aten, loop, mixed (a + b) or unknown.

    One vocabulary for the spy's labels, the cross-checks' evidence and the native references'
    kernel names, so that two of them can be compared.
    """
    if not label:
        return "unknown"
    head = label.split(":", 1)[0].strip()
    if head in FAMILIES or head.startswith("mixed ("):  # a cross-check's "<family>: <evidence>"
        return head
    families = sorted({_part_family(part) for part in label.split(", ")})
    if len(families) > 1 and "unknown" in families:
        families.remove("unknown")
    return families[0] if len(families) == 1 else "mixed (" + " + ".join(families) + ")"


# Keras's mixed dtype policies: the type layers compute in (variables stay float32).
MIXED_COMPUTE = {"mixed_bfloat16": "bf16", "mixed_float16": "fp16"}

FAMILIES = ("cudnn", "cuda", "onednn", "aten", "loop", "unknown")


def _part_family(part: str) -> str:
    p = part.lower()
    if "without cudnn" in p:
        return "cuda"
    if "cudnn" in p or "dnn_rnn" in p:
        return "cudnn"
    if "onednn" in p or "mkldnn" in p:
        return "onednn"
    if p.startswith("generic") or "loop" in p or "scan" in p:
        return "loop"
    if "aten" in p:
        return "aten"
    return "unknown"


OP_FAMILIES = ("matmul", "fused LSTM kernel", "element-wise", "gather/scatter", "copies and layout",
              "loop and control", "other")
_LAYOUT = {"copy", "to", "to_copy", "contiguous", "clone", "cat", "stack", "transpose", "permute", "view", "reshape",
           "t", "expand", "slice", "select", "unbind", "split", "split_with_sizes", "flip", "empty", "empty_strided",
           "zeros", "zeros_like", "ones", "ones_like", "fill", "zero", "squeeze", "unsqueeze", "as_strided", "detach",
           "resize", "new_empty", "new_zeros", "lift_fresh", "alias", "narrow", "concatenate", "broadcast_in_dim"}
_CONTROL = {"while", "scan", "cond", "item", "local_scalar_dense", "is_nonzero"}
_ELEMENTWISE = ("add", "sub", "mul", "div", "sigmoid", "tanh", "exp", "log", "sqrt", "pow", "neg", "clamp", "clip",
                "max", "min", "where", "abs", "mean", "sum", "lerp", "foreach", "reciprocal", "square", "relu",
                "backward", "cross_entropy", "logical", "ge", "gt", "le", "lt", "eq", "ne", "sign", "erf")


def family_of(op: str) -> str:
    """The family of a profiler's op name ("aten::addmm" -> matmul), one vocabulary for every backend."""
    name = op.split("::")[-1].lower().strip("_")
    if name in {"mm", "addmm", "bmm", "matmul", "linear", "dot", "einsum", "addmv", "mv", "baddbmm"} or any(
            m in name for m in ("gemm", "matmul", "dot_general", "convolution")):
        return "matmul"
    if "rnn" in name or "lstm" in name:
        return "fused LSTM kernel"
    if any(m in name for m in ("embedding", "index", "gather", "scatter")):
        return "gather/scatter"
    if name in _LAYOUT:
        return "copies and layout"
    if name in _CONTROL:
        return "loop and control"
    if any(m in name for m in _ELEMENTWISE):
        return "element-wise"
    return "other"


def xla_family(name: str) -> str:
    """The family of an XLA:CPU thunk as a profiler names it ("ynn_fusion.3", "multiply_add_fusion", "while.2").

    XLA:CPU hands dots, with what it fuses into them, to YNNPACK as ``ynn_fusion`` (their HLO metadata says
    dot_general); loop fusions are named after the ops they fuse; ``wrapped_*`` wraps one op.
    """
    op = name.rstrip("0123456789").rstrip(".").removeprefix("wrapped_").removesuffix("_fusion")
    if op.startswith("ynn") or op.startswith("dot") or "convolution" in op:
        return "matmul"
    if "dynamic-update-slice" in op or "dynamic-slice" in op or op.startswith(("bitcast", "copy", "transpose")):
        return "copies and layout"
    if op in ("while", "conditional", "call"):
        return "loop and control"
    return family_of(op.replace("-", "_"))


def wall_seconds(events: Iterable[tuple[Any, Any, float, float]], idle: Callable[[Any], bool]) -> dict[Any, float]:
    """Wall time per name of a profiler's nested events ``(thread, name, start_s, duration_s)``.

    On each thread the innermost open event holds the thread (a loop's own time, not its body's); where
    several threads' events run at once, they share that wall time equally, so that the names' times add up
    to at most the wall time traced, also when an XLA or TF op runs on two threads at once. Events for
    which ``idle(name)`` is true (an executor waiting for its workers) hold nothing.
    """
    segments: list[tuple[float, float, Any]] = []
    by_thread: dict[Any, list[tuple[float, float, Any]]] = {}
    for thread, name, start, duration in events:
        by_thread.setdefault(thread, []).append((start, start + duration, name))
    for timeline in by_thread.values():
        timeline.sort(key=lambda event: (event[0], event[0] - event[1]))  # the outer first where two start together
        stack: list[tuple[float, Any]] = []  # open events: (end, name)
        cursor = 0.0
        for start, end, name in [*timeline, (math.inf, math.inf, None)]:  # the sentinel closes everything
            while stack and stack[-1][0] <= start:
                if stack[-1][0] > cursor:
                    segments.append((cursor, stack[-1][0], stack[-1][1]))
                cursor = stack.pop()[0]
            if stack and start > cursor:
                segments.append((cursor, start, stack[-1][1]))
            cursor = start
            stack.append((min(end, stack[-1][0]) if stack else end, name))
    segments = [seg for seg in segments if seg[2] is not None and not idle(seg[2])]
    if not segments:
        return {}
    starts, ends = np.array([seg[0] for seg in segments]), np.array([seg[1] for seg in segments])
    bounds = np.unique(np.concatenate([starts, ends]))
    active = np.zeros(len(bounds))
    np.add.at(active, np.searchsorted(bounds, starts), 1)
    np.add.at(active, np.searchsorted(bounds, ends), -1)
    running = np.cumsum(active)[:-1]  # events running in each interval between two bounds
    share = np.divide(np.diff(bounds), running, out=np.zeros(len(running)), where=running > 0)
    held = np.concatenate([[0.0], np.cumsum(share)])  # each running event's share of the wall, up to each bound
    found: dict[Any, float] = {}
    for (_, _, name), a, b in zip(segments, np.searchsorted(bounds, starts), np.searchsorted(bounds, ends),
                                  strict=True):
        found[name] = found.get(name, 0.0) + float(held[b] - held[a])
    return found


def compare_kernels(spied: str, observed: str) -> str:
    """'agrees', 'MISMATCH: ...' or 'not checked: ...': the spy's label against the program's evidence."""
    if observed.startswith("not checked"):
        return observed
    if spied == "unknown":
        return f"not checked: the spy saw no LSTM call (the program shows {observed!r})"
    ran, said = kernel_family(observed), kernel_family(spied)
    if ran == "unknown":
        return f"not checked: the executed program shows no LSTM kernel kerasbench knows ({observed!r})"
    if ran == said:
        return "agrees"
    return f"MISMATCH: the spy saw {spied!r} ({said}) but the executed program shows {observed!r}"


@dataclass(frozen=True)
class StepCount:
    """The backend's own count of one step (``Adapter.count_step``): matrix-product FLOPs and host dispatches.

    ``counter`` names what counted, or reads "no counter: <why>" / "not counted: <error>" where
    ``matmul_flops`` is None. ``dispatches`` is the calls the host makes per step: 1 for one compiled
    call, the op count where the backend runs op by op; ``dispatch_how`` says which was observed.
    """

    matmul_flops: float | None
    counter: str
    dispatches: int | None = None
    dispatch_how: str = "not observed"


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
    # Recorded when Keras's ``bidirectional_lstm`` (both directions in one call) returns.
    fused_bidirectional_label: ClassVar[str | None] = "cudnn (fused bidirectional)"
    # What ``device_peak_mib`` covers, where it is not "since reset_memory_stats".
    device_peak_scope: ClassVar[str | None] = None
    # What this backend has beyond its adapter, as modules (``bench.backends.implementation`` imports them):
    # its data-parallel engine's primitives, and its native reference (None: none, ``why_not`` says why).
    distributed_module: ClassVar[str]
    native_module: ClassVar[str | None] = None
    # Capabilities that options and variants need, asked of the adapter instead of its name. Where one is
    # False, ``why_not[flag]`` is the reason the user is shown (Keras's own, where Keras refuses).
    supports_devices: ClassVar[bool] = True  # --devices N: one process driving N devices
    supports_steps_per_execution: ClassVar[bool] = True  # the spe8 variant
    supports_flush_denormals: ClassVar[bool] = False  # the flush-denormals variant: a switch of the backend's own
    # On a GPU: Keras's fused LSTM compiles for bfloat16/float16 there, or falls back by itself (bf16, fp16).
    supports_half_lstm_on_gpu: ClassVar[bool] = True
    # On a GPU: jit_compile=True compiles this model with XLA / torch.compile (else jit is the same as no-jit).
    supports_jit_on_gpu: ClassVar[bool] = True
    why_not: ClassVar[dict[str, str]] = {}

    # The spy patches Keras functions, which are process-wide: so is what it saw.
    _lstm_paths: ClassVar[set[str]] = set()
    _spy_state: ClassVar[dict] = {"paused": 0, "lstm_declined": False}

    def __init__(self) -> None:
        self._device: DeviceInfo | None = None
        self._threads_requested: int | None = None
        self._flush_denormals = False
        self._denormals: str | None = None
        self._gpu_error = ""  # what the backend raised or logged while looking for a GPU
        self._gpu_said: list[str] = []  # what it printed to stderr meanwhile (TensorFlow's loader warnings)

    @classmethod
    def lacks(cls, capability: str) -> str | None:
        """Why this backend lacks ``capability`` (a flag or module attribute above), or None when it has it."""
        if getattr(cls, capability):
            return None
        return cls.why_not.get(capability, f"the {cls.name} backend has no {capability}")

    # --- set-up -----------------------------------------------------------------------------

    def configure(self, device: str, threads: int, *, flush_denormals: bool = False,
                  strict_fp32: bool = False) -> DeviceInfo:
        """Set thread counts (denormal flushing, TF32 off), resolve the device (once) and check it against ``device``.

        Flushing is set before the backend runs anything, so that the threads it starts later inherit it.
        """
        self._threads_requested = threads
        self._set_threads(threads)
        if flush_denormals:
            self._set_flush_denormals()
            self._flush_denormals = True
        if strict_fp32:
            self._set_strict_fp32()
        info = self.device
        if device == "gpu" and info.kind != "gpu":
            raise BackendError(self._no_gpu_message())
        return info

    def _no_gpu_message(self) -> str:
        support = self.gpu_support()
        if not support.get("cuda_build"):
            why = (f"the installed build is CPU-only ({support.get('detail')}). Install the GPU set with "
                   f"{GPU_INSTALL} and run with `make bench DEVICE=gpu`.")
        else:
            said = " | ".join(self._gpu_said)
            why = (f"a CUDA build is installed ({support.get('detail')}), but it found no GPU."
                   + (f" Its error: {self._gpu_error}." if self._gpu_error else "")
                   + (f" It printed: {said}." if said else "")
                   + " Check its CUDA libraries first (`python -m bench cuda-libs`, no GPU needed), then the NVIDIA "
                   "driver (nvidia-smi) and CUDA_VISIBLE_DEVICES.")
        return (f"--device gpu was asked for, but the {self.name} backend sees no GPU on this machine: {why} "
                "Or use --device cpu (or auto).")

    @property
    def device(self) -> DeviceInfo:
        """The GPU the backend will use, else the CPU; asked of the backend once, then cached.

        What the backend raises or prints while it looks (a CUDA library it cannot load) is kept for the
        message of ``--device gpu``, and printed as it would have been.
        """
        if self._device is None:
            try:
                with stderr_kept(self._gpu_said):
                    gpu = self._gpu_name()
            except Exception as exc:  # JAX told to use CUDA raises where its plugin fails: no GPU, and why
                self._gpu_error = "; ".join(filter(None, [self._gpu_error, f"{type(exc).__name__}: {exc}"]))
                gpu = None
            self._device = DeviceInfo("gpu", gpu) if gpu is not None else DeviceInfo("cpu", cpu_model())
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

    def device_memory_in_use(self) -> int | None:
        """Bytes the backend's GPU allocator holds now (its pool, reserved or not yet used), or None where unknown.

        NVML's figure for this process is at least this (plus the CUDA context): how ``bench.gpu`` tells this
        run's own entry from others where NVML lists host PIDs (in a container).
        """
        return None

    def _install_backend_lstm_spies(self) -> None:
        """Watch backend-specific LSTM kernels, for a subclass whose ``fused_lstm_label`` is None."""

    def _traced_on_meta(self, args: tuple, kwargs: dict) -> bool:
        """Whether a call's tensors live on a shape-only device (torch's ``meta``): not a real run."""
        return False

    def _thread_settings(self) -> dict:
        """The thread counts the backend reports (or how they were set, where it reports none)."""
        raise NotImplementedError

    def _set_flush_denormals(self) -> None:
        """Make the backend's CPU threads flush denormal floats to zero (the flush-denormals variant)."""
        raise NotImplementedError(f"the {self.name} backend offers no switch to flush denormals")

    def _denormal_probe(self, x: np.ndarray, ones: np.ndarray) -> np.ndarray:
        """``x * ones`` computed by the backend on its device (its own threads), back as NumPy."""
        raise NotImplementedError

    def _matmul_precision(self) -> dict:
        """The backend's float32 matmul precision settings (TF32 on or off on NVIDIA GPUs)."""
        raise NotImplementedError

    def _set_strict_fp32(self) -> None:
        """Turn off every TF32 mode of the backend: matmuls and cuDNN RNNs in full float32 (strict-fp32)."""
        raise NotImplementedError

    def _tf32_switches(self) -> tuple[bool, bool, str]:
        """Whether the backend's own rules let float32 matmuls, and its cuDNN LSTM, run in TF32 on a GPU
        that has it; and which settings said so."""
        raise NotImplementedError

    def _compute_capability(self) -> tuple[int, int] | None:
        """The GPU's compute capability (major, minor), or None where the backend does not report it."""
        raise NotImplementedError

    def gpu_support(self) -> dict:
        """``{"cuda_build": bool, "gpu_visible": bool, "detail": str}``: can this build use a GPU; does it see one."""
        raise NotImplementedError

    def gpu_count(self) -> int:
        """How many GPUs the backend sees (after ``configure``)."""
        raise NotImplementedError

    def simulate_devices(self, n: int) -> str:
        """Give this one process ``n`` CPU devices (call before the backend starts); returns what they are.

        For ``--devices N`` on a CPU (bench/distributed/): GPUs, where present, are used instead.
        Only asked of a backend that ``supports_devices``.
        """
        raise NotImplementedError

    def device_facts(self) -> dict:
        """What the backend says about the device software: CUDA, cuDNN, its own build's versions."""
        raise NotImplementedError

    def cuda_major(self) -> int | None:
        """The CUDA major version this build was compiled for (12, 13); None for a CPU build."""
        raise NotImplementedError

    def load_cuda_libraries(self) -> str:
        """Load the CUDA libraries (cuDNN, NCCL, ...) this backend loads, as far as it does without a GPU; says how.

        ``bench.cuda_libs`` then reads which files were loaded: `make venv-gpu`'s check, no GPU needed.
        """
        raise NotImplementedError

    def _program_kernel(self, model: Any, x: np.ndarray) -> str:
        """The LSTM kernel family and its evidence in the program the backend executes for ``model(x)``."""
        raise NotImplementedError

    # --- settings that change speed, as the backend reports them ------------------------------

    def precision(self, dtype_policy: str, rnn_family: str) -> Precision:
        """What float32 matmuls and the LSTM's recurrence ran in (``results.Precision``), by the rules the
        libraries apply: a mixed policy computes in its 16-bit type; TF32 needs an NVIDIA GPU of compute
        capability 8.0 or more and the backend's switch for that op (a cuDNN LSTM has its own switch on
        torch and JAX; any other LSTM kernel is matmuls)."""
        mixed = MIXED_COMPUTE.get(dtype_policy)
        if mixed:
            return Precision(mixed, mixed, f"Keras dtype policy {dtype_policy}: layers compute in {mixed}, "
                                           "variables stay float32")
        if self.device.kind != "gpu":
            return Precision("fp32", "fp32", "float32 on the CPU: TF32 is an NVIDIA GPU mode")
        matmul_tf32, cudnn_tf32, how = self._tf32_switches()
        rnn_tf32 = cudnn_tf32 if rnn_family == "cudnn" else matmul_tf32
        capability = self._compute_capability()
        if capability is None:
            tf32 = "tf32 if the GPU has it (compute capability not reported), else fp32"
            return Precision(tf32 if matmul_tf32 else "fp32", tf32 if rnn_tf32 else "fp32",
                             f"{how}; LSTM kernel {rnn_family}")
        has = capability >= (8, 0)
        where = f"compute capability {capability[0]}.{capability[1]} ({'has' if has else 'no'} TF32)"
        return Precision("tf32" if has and matmul_tf32 else "fp32", "tf32" if has and rnn_tf32 else "fp32",
                         f"{how}; {where}; LSTM kernel {rnn_family}")

    def runtime_settings(self) -> dict:
        """Threads, denormal handling and float32 matmul precision, as observed now (for each record)."""
        return {"threads": {"requested": self._threads_requested, **self._thread_settings()},
                "denormals": self.denormal_handling(), "float32_matmul": self._matmul_precision()}

    def denormal_handling(self) -> str:
        """Whether denormal float32 inputs are flushed to zero, observed with a probe (once per process).

        The probe multiplies 2**20 denormals (1e-39) by 1.0 on the backend's device, large enough
        to run on its worker threads: flushing (FTZ/DAZ) gives 0, keeping them gives 1e-39.
        """
        if self._denormals is None:
            n = 2**20
            try:
                out = self._denormal_probe(np.full(n, 1e-39, np.float32), np.ones(n, np.float32))
            except Exception as exc:  # an observation, never a reason to stop a run
                self._denormals = f"not observed ({type(exc).__name__}: {exc})"
                return self._denormals
            zeros = int(np.count_nonzero(out == 0))
            state = ("flushed to zero" if zeros == n else "kept (not flushed)" if zeros == 0
                     else f"partly flushed ({zeros} of {n} results zero: threads differ)")
            how = "; flush-denormals set by kerasbench" if self._flush_denormals else ""
            self._denormals = f"{state} (observed: {n} float32 denormals times 1.0 on {self.device.kind}{how})"
        return self._denormals

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

    def count_step(self, model: Any, x: np.ndarray, y: np.ndarray, train: bool) -> StepCount:
        """Count one train (``train``) or predict step of ``model`` on the batch (x, y) with the backend's counter.

        Runs outside any timed region, with the LSTM spy paused, on a model that has run the step before
        (after the timed rounds): a first call would also count what building the model and optimizer
        runs. A train step counted this way may update the model (one more step after the timed ones).
        A failure is "not counted: <why>".
        """
        with self.lstm_spy_paused():
            try:
                return self._count_step(model, np.asarray(x), np.asarray(y, dtype="float32"), train)
            except Exception as exc:  # an observation, never a reason to stop a run
                return StepCount(None, f"not counted: {type(exc).__name__}: {exc}")

    def _count_step(self, model: Any, x: np.ndarray, y: np.ndarray, train: bool) -> StepCount:
        return StepCount(None, f"no counter: kerasbench has none for the {self.name} backend")

    def compiled(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` compiled the way this backend runs Keras's steps (a jitted function, a tf.function), or ``fn``
        itself where the backend runs op by op; for the ceilings (bench/ceilings.py)."""
        return fn

    def dispatches_per_op(self) -> bool:
        """Whether ``compiled`` functions still dispatch each op from the host (eager backends)."""
        return True

    def own_op(self, name: str) -> Callable[[Any, Any], Any]:
        """The backend's own ``add``, ``multiply`` or ``matmul``, without Keras's wrapping: the ceilings
        (bench/ceilings.py) time the machine through the cheapest call there is."""
        import keras

        return getattr(keras.ops, name)

    def gemms(self, a: Any, b: Any) -> dict[str, Callable[[], Any]]:
        """The GEMM paths this backend has for the ceiling's product ``a @ b`` (staged here, outside any timed
        region), by name; bench/ceilings.py times each and takes the fastest, since a ceiling that one of the
        backend's own kernels beats is no ceiling."""
        matmul = self.own_op("matmul")
        return {"matmul": lambda: matmul(a, b)}

    def phase_steps(self, model: Any, x: Any, y: Any) -> dict[str, Callable[[], Any]]:
        """A train step of ``model`` on the staged batch (x, y) cut after each phase, as the backend runs it:
        "forward" (the loss), "forward_backward" (and the gradients), "update" (and the optimizer's update).
        Each call returns what the device must finish (``sync`` it); none changes the model's weights."""
        raise NotImplementedError(f"the {self.name} adapter cannot split a train step")

    def op_families(self, step: Callable[[], Any], calls: int) -> tuple[dict[str, float] | None, str]:
        """Seconds per call of ``step`` by operation family (bench.phases.FAMILIES), from the backend's
        profiler over ``calls`` calls, and what profiled them; (None, "not profiled: <why>") where it cannot."""
        return None, f"not profiled: kerasbench reads no profiler of the {self.name} backend"

    def resolved_jit_compile(self, model: Any) -> bool | str:
        """What ``jit_compile="auto"`` became for this model (XLA for TF/JAX; torch.compile for torch).

        Where True was asked and Keras turned it off (a layer whose ``supports_jit`` is False: Keras's
        trainer.py, ``model_supports_jit``), a string that starts "False" and names those layers.
        """
        resolved = getattr(model, "jit_compile", "unknown")
        asked = getattr(getattr(model, "_compile_config", None), "config", {}).get("jit_compile")
        if asked is True and resolved is False:
            off = sorted({type(layer).__name__ for layer in model._flatten_layers() if not layer.supports_jit})
            return (f"False (jit_compile=True asked; Keras turned it off: supports_jit is False on "
                    f"{', '.join(off) or 'no layer'}; the same program as jit_compile=False)")
        return resolved

    # --- memory -----------------------------------------------------------------------------

    def reset_memory_stats(self) -> dict:
        """Reset the device allocator's peak counter; returns the host baseline for ``memory_stats``."""
        if self.device.kind == "gpu":
            self._reset_device_peak()
        return {"rss": _rss_bytes(), "peak_rss": _peak_rss_bytes()}

    def memory_stats(self, baseline: dict) -> dict:
        """Host RSS growth since ``baseline`` and peaks; on GPU the backend allocator's peak, in MiB."""
        stats = {
            "host_rss_growth_mib": mib(_rss_bytes() - baseline["rss"]),
            # ru_maxrss cannot be reset: this is the process's peak so far, a ceiling for this benchmark.
            "host_peak_rss_mib": mib(_peak_rss_bytes()),
        }
        if self.device.kind != "gpu":
            return stats
        peak = self._device_peak()
        if peak is not None:
            stats["device_peak_mib"] = mib(peak)
            if self.device_peak_scope is not None:
                stats["device_peak_scope"] = self.device_peak_scope
        return stats

    # --- which LSTM implementation ran --------------------------------------------------------
    # Keras picks the LSTM kernel silently (cuDNN, a backend's fused loop, or its generic RNN loop),
    # and the choice changes results several-fold between versions. Two observations, never a guess:
    # the spy watches which of Keras's kernel functions returned during real (non-symbolic) calls,
    # and ``kernel_cross_check`` reads the executed program (profiler ops, compiled HLO, graph ops).

    def install_lstm_spy(self) -> None:
        """Start recording which LSTM kernel path each LSTM layer takes in real calls (idempotent).

        Watched: ``backend.bidirectional_lstm`` (both directions in one fused call, tried first by
        ``Bidirectional``), ``backend.lstm`` (one direction, fused) and ``backend.rnn`` (Keras's generic
        loop). A label is recorded only after its call returned; calls in Keras's symbolic scope (model
        building, output-spec inference) and on torch's ``meta`` device are ignored: they run nothing.
        """
        try:
            from keras.src import backend as kbackend
        except ImportError:
            return
        if getattr(kbackend.lstm, "_kerasbench_spy", False):
            return
        state = self._spy_state
        generic = self.generic_loop

        def declined() -> None:
            state["lstm_declined"] = True

        def generic_label(args: tuple, kwargs: dict, out: Any) -> str:
            # backend.rnn(step_function, inputs, initial_states, go_backwards, mask, ...)
            mask = kwargs.get("mask", args[4] if len(args) > 4 else None)
            tried, state["lstm_declined"] = state["lstm_declined"], False
            if mask is not None:
                return f"generic ({generic}; masked input)"
            if not tried:  # LSTM skips its fused kernel for recurrent_dropout or use_cudnn=False
                return f"generic ({generic}; fused kernel not tried: layer settings)"
            return f"generic ({generic})"

        fused, both = self.fused_lstm_label, self.fused_bidirectional_label
        self._watch(kbackend, "lstm", lambda a, k, out: fused and self._fused_label(fused, out), on_decline=declined)
        self._watch(kbackend, "bidirectional_lstm", lambda a, k, out: both and self._fused_label(both, out))
        self._watch(kbackend, "rnn", generic_label)
        self._install_backend_lstm_spies()

    def _fused_label(self, label: str, out: Any) -> str:
        """The label of a fused LSTM call that returned ``out``: ``label``, unless the backend library picks the
        kernel again below Keras (torch's ATen does, by dtype), where the subclass applies that rule."""
        return label

    def take_lstm_paths(self) -> str:
        """The LSTM kernel paths seen since the last call, e.g. ``"generic (lax.scan)"``."""
        paths = ", ".join(sorted(self._lstm_paths)) or "unknown"
        self._lstm_paths.clear()
        return paths

    @contextlib.contextmanager
    def lstm_spy_paused(self) -> Iterator[None]:
        """Calls inside record nothing (the cross-check's own trace must not add to a benchmark's paths)."""
        self._spy_state["paused"] += 1
        try:
            yield
        finally:
            self._spy_state["paused"] -= 1

    def _watch(self, module: Any, attr: str, label: Callable[[tuple, dict, Any], str | None],
               on_decline: Callable[[], None] | None = None) -> None:
        """Record ``label(args, kwargs, out)`` after each real call of ``module.attr`` returns ``out`` (nothing if
        absent)."""
        original: Callable | None = getattr(module, attr, None)
        if original is None:
            return
        paths, state = self._lstm_paths, self._spy_state
        traced_on_meta = self._traced_on_meta

        def spy(*args: Any, **kwargs: Any) -> Any:
            if state["paused"] or _in_symbolic_scope() or traced_on_meta(args, kwargs):
                return original(*args, **kwargs)
            try:
                out = original(*args, **kwargs)
            except NotImplementedError:  # the backend declined: Keras falls back to another path
                if on_decline is not None:
                    on_decline()
                raise
            found = label(args, kwargs, out)
            if found:
                paths.add(found)
            return out

        spy._kerasbench_spy = True
        setattr(module, attr, spy)

    def _wrap_lstm_kernel(self, module: Any, attr: str, label: str | Callable[[Any], str]) -> None:
        """Record ``label`` (or ``label(out)``) after each real call of ``module.attr`` returns ``out`` (nothing if
        Keras has no such function)."""
        self._watch(module, attr, lambda a, k, out: label(out) if callable(label) else label)

    def kernel_cross_check(self, model: Any, x: np.ndarray, spied: str) -> KernelCheck:
        """Check the spy's label ``spied`` against the program the backend executes for ``model(x)``.

        Runs outside any timed region, with the spy paused. A failure to check is reported as
        "not checked: <why>", never replaced by an assumption.
        """
        with self.lstm_spy_paused():
            try:
                observed = self._program_kernel(model, np.asarray(x))
            except Exception as exc:  # an observation, never a reason to stop a run
                observed = f"not checked: {type(exc).__name__}: {exc}"
        verdict = compare_kernels(spied, observed)
        family = kernel_family(observed) if not observed.startswith("not checked") else kernel_family(spied)
        return KernelCheck(observed=observed, verdict=verdict, family=family)


def describe_program(marks: list[tuple[str, str, int, int]], timesteps: int, where: str) -> str:
    """'<family>: <evidence>' from what an executed program contained.

    ``marks`` are (family, mark, count, at_least): a fused kernel's op or call by name (at least
    1), a loop op (at least 1), or the matmul a per-timestep loop runs each step (at least the
    number of timesteps). A family is seen where its mark appeared at least that often.
    """
    seen = sorted({family for family, _, n, at_least in marks if n >= at_least})
    head = "unknown" if not seen else seen[0] if len(seen) == 1 else "mixed (" + " + ".join(seen) + ")"
    counts = ", ".join(f"{n} {mark}" for _, mark, n, _ in marks)
    return f"{head}: {counts} in {where} of {timesteps} timesteps"


def _in_symbolic_scope() -> bool:
    try:
        from keras.src.backend.common.symbolic_scope import in_symbolic_scope
    except ImportError:
        return False
    return in_symbolic_scope()




@contextlib.contextmanager
def stderr_kept(lines: list[str]) -> Iterator[None]:
    """Collect what is written to file descriptor 2 inside (C++ libraries write there, past ``sys.stderr``) into
    ``lines``, then write it on to stderr as it would have gone."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as kept:
        os.dup2(kept.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            kept.seek(0)
            text = kept.read().decode(errors="replace")
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()
            lines.extend(line.strip() for line in text.splitlines() if line.strip())


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
