"""The PyTorch adapter; imported only when KERAS_BACKEND is torch (see bench/backends/__init__.py)."""

from __future__ import annotations

import collections
import importlib
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import torch  # absolute import: the real PyTorch, not this module

from bench.backends.base import Adapter, StepCount, describe_program, family_of, wall_seconds

# The loop Keras runs where it does not call torch._VF.lstm (CPU, torch.compile, non-default activations).
LOOP_LABEL = "fused input projection + python per-timestep loop"
# ATen runs cuDNN's RNN for bfloat16 only when built with cuDNN 9.13 or later, on sm_80 or newer
# (aten/src/ATen/cuda/detail/CUDAHooks.cpp: supportsBFloat16RNNWithCuDNN, pytorch#164411, torch 2.10+).
CUDNN_BF16_RNN_VERSION = 91300
CUDNN_BF16_RNN_CAPABILITY = 8


def aten_lstm_uses_cudnn(tensor: Any) -> tuple[bool, str]:
    """Whether ATen's ``torch._VF.lstm`` on ``tensor`` (its input or output) runs cuDNN, and if not, why.

    ATen's rule (aten/src/ATen/native/RNN.cpp: ``use_cudnn``): ``at::cudnn_is_acceptable`` (cuDNN
    enabled and built in, a CUDA tensor) and a half, float or double tensor, or a bfloat16 one where
    ``supportsBFloat16RNNWithCuDNN``. Otherwise ATen runs its own LSTM: one fused CUDA cell kernel per
    timestep. ``torch.backends.cudnn.is_acceptable`` is that check in Python for the first three dtypes;
    it refuses bfloat16 whatever the build, so for bfloat16 it is asked of a float32 stand-in and the
    version and capability are read as ATen reads them.
    """
    acceptable = torch.backends.cudnn.is_acceptable
    if tensor.dtype != torch.bfloat16:
        if acceptable(tensor):
            return True, ""
        return False, (f"torch.backends.cudnn.is_acceptable is False for {tensor.dtype} on {tensor.device.type} "
                       f"(cudnn.enabled={torch.backends.cudnn.enabled})")
    if not acceptable(SimpleNamespace(device=tensor.device, dtype=torch.float32)):
        return False, f"cuDNN is not usable on {tensor.device.type} (cudnn.enabled={torch.backends.cudnn.enabled})"
    version = torch.backends.cudnn.version() or 0
    major, minor = torch.cuda.get_device_capability(tensor.device)
    if version >= CUDNN_BF16_RNN_VERSION and major >= CUDNN_BF16_RNN_CAPABILITY:
        return True, ""
    return False, (f"bfloat16: ATen runs cuDNN's RNN only when built with cuDNN >= 9.13 on sm_80+; this is cuDNN "
                   f"{version} on sm_{major}{minor}")


def vf_lstm_label(label: str, out: Any) -> str:
    """``label`` where ATen ran cuDNN for the output ``out`` of Keras's ``torch._VF.lstm`` call, else ATen's own."""
    tensor = _first_tensor(out)
    if tensor is None:  # never from Keras 3.15; a label is still owed
        return f"{label} (not checked against ATen's rule: no tensor returned)"
    uses, why = aten_lstm_uses_cudnn(tensor)
    return label if uses else f"torch._VF.lstm on CUDA without cuDNN: ATen's fused LSTM cell per timestep ({why})"


def loop_label(out: Any = None) -> str:
    """Keras's torch loop; named as traced by torch.compile where it is, the one reason Keras skips cuDNN on CUDA
    (keras/src/backend/torch/rnn.py: ``lstm`` and ``bidirectional_lstm`` test ``torch.compiler.is_compiling``)."""
    return f"{LOOP_LABEL} (traced by torch.compile)" if torch.compiler.is_compiling() else LOOP_LABEL


def _first_tensor(out: Any) -> Any:
    """The first tensor (what has a dtype and a device) in a nest of tuples and lists (Keras's LSTM functions
    return outputs and states)."""
    if hasattr(out, "dtype") and hasattr(out, "device"):
        return out
    for item in out if isinstance(out, tuple | list) else ():
        found = _first_tensor(item)
        if found is not None:
            return found
    return None


class TorchAdapter(Adapter):
    name = "torch"
    packages = ("torch",)
    generic_loop = "python per-timestep loop"
    fused_lstm_label = None  # torch records its own two paths, in _install_backend_lstm_spies
    # One torch._VF.lstm(bidirectional=True) call on CUDA: cuDNN's kernel (the cross-check shows aten::_cudnn_rnn).
    fused_bidirectional_label = "cudnn (fused bidirectional, torch._VF.lstm)"
    distributed_module = "bench.distributed.torch"
    native_module = "bench.native.torch"
    supports_devices = False
    supports_steps_per_execution = False
    supports_flush_denormals = True
    why_not: ClassVar[dict[str, str]] = {
        "supports_devices": "PyTorch has no one-process multi-device engine in Keras 3.15 (keras.distribution is "
                            "JAX-only, Keras's torch trainer drives one device, and PyTorch itself recommends "
                            "DistributedDataParallel over torch.nn.DataParallel). Use --processes N: "
                            "torch.distributed, one process per device.",
        "supports_steps_per_execution": "Keras's PyTorch trainer requires steps_per_execution=1",
    }

    def _set_threads(self, threads: int) -> None:
        torch.set_num_threads(threads)

    def _thread_settings(self) -> dict:
        # Inter-op threads are left at torch's default (it refuses a change once used); recorded as they are.
        return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads(),
                "how": "torch.set_num_threads (intra-op); inter-op left at torch's default"}

    def _set_flush_denormals(self) -> None:
        # Sets FTZ/DAZ on this thread; threads torch starts later inherit it (the probe checks all of them).
        if not torch.set_flush_denormal(True):
            raise RuntimeError("torch.set_flush_denormal(True) returned False: this CPU has no flush-to-zero mode")

    def _denormal_probe(self, x: np.ndarray, ones: np.ndarray) -> np.ndarray:
        device = "cuda" if self.device.kind == "gpu" else "cpu"
        out = torch.from_numpy(x).to(device) * torch.from_numpy(ones).to(device)
        return out.cpu().numpy()

    def _matmul_precision(self) -> dict:
        # TF32 only exists on NVIDIA GPUs (Ampere and later); on CPU these are settings without effect.
        found = {"torch.get_float32_matmul_precision": torch.get_float32_matmul_precision(),
                 "torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32}
        try:
            found["torch.backends.cudnn.allow_tf32"] = torch.backends.cudnn.allow_tf32
        except RuntimeError as exc:  # the legacy and per-op APIs were mixed: torch reads neither as one flag
            found["torch.backends.cudnn.allow_tf32"] = f"unreadable: {exc}"
        found["torch.backends.cudnn.rnn.fp32_precision"] = torch.backends.cudnn.rnn.fp32_precision
        return found

    def _set_strict_fp32(self) -> None:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False  # on by default: cuDNN's LSTM would run in TF32
        torch.set_float32_matmul_precision("highest")

    def _tf32_switches(self) -> tuple[bool, bool, str]:
        matmul = torch.backends.cuda.matmul.allow_tf32
        try:
            cudnn = torch.backends.cudnn.allow_tf32
            how = f"torch.backends.cudnn.allow_tf32 = {cudnn}"
        except RuntimeError:  # torch refuses the legacy flag once the per-op API set cuDNN's conv and RNN apart
            cudnn = torch.backends.cudnn.rnn.fp32_precision == "tf32"
            how = f"torch.backends.cudnn.rnn.fp32_precision = {torch.backends.cudnn.rnn.fp32_precision!r}"
        return matmul, cudnn, f"torch.backends.cuda.matmul.allow_tf32 = {matmul}, {how}"

    def _compute_capability(self) -> tuple[int, int] | None:
        return tuple(torch.cuda.get_device_capability(0)) if torch.cuda.is_available() else None

    def gpu_support(self) -> dict:
        cuda = torch.version.cuda
        detail = f"torch {torch.__version__} built with CUDA {cuda}" if cuda else f"torch {torch.__version__}, CPU-only"
        return {"cuda_build": cuda is not None, "gpu_visible": bool(cuda) and torch.cuda.is_available(),
                "detail": detail}

    def device_facts(self) -> dict:
        facts = {"torch": torch.__version__, "cuda_build": torch.version.cuda,
                 "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                 "cudnn_available": torch.backends.cudnn.is_available(), "cudnn_enabled": torch.backends.cudnn.enabled}
        if self.device.kind == "gpu":
            facts["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        return facts

    def cuda_major(self) -> int | None:
        return int(torch.version.cuda.split(".")[0]) if torch.version.cuda else None

    def load_cuda_libraries(self) -> str:
        return "import torch: a CUDA build loads cuBLAS, cuDNN and NCCL as it is imported"

    def _program_kernel(self, model: Any, x: np.ndarray) -> str:
        """Op names torch's profiler saw in one ``predict_on_batch``: Keras's predict function, compiled with
        torch.compile where the timed step was (Keras skips cuDNN while compiling, so an eager call would
        show another program). Building that compiled function here costs a compilation, outside timing."""
        import keras
        from torch.profiler import ProfilerActivity, profile

        tensor = keras.ops.convert_to_tensor(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model.predict_on_batch(tensor)
        ops: collections.Counter = collections.Counter()
        loose_matmuls = compiled = 0
        for event in prof.events():
            ops[event.name] += 1
            compiled += event.name.startswith("Torch-Compiled Region")
            # A per-timestep matmul of Keras's loop, not one of ATen's own LSTM (counted by its kernel below).
            loose_matmuls += event.name in ("aten::mm", "aten::addmm") and not _inside(event, "aten::lstm")
        marks = [("cudnn", "aten::_cudnn_rnn", ops["aten::_cudnn_rnn"], 1),
                 ("onednn", "aten::mkldnn_rnn_layer", ops["aten::mkldnn_rnn_layer"], 1),
                 ("cuda", "aten::_thnn_fused_lstm_cell", ops["aten::_thnn_fused_lstm_cell"], 1),
                 ("loop", "aten::mm/addmm outside aten::lstm", loose_matmuls, x.shape[1])]
        if not any(n for _, _, n, _ in marks[:3]):  # aten::lstm on none of its fused kernels: ATen's own
            marks.append(("aten", "aten::lstm", ops["aten::lstm"], 1))
        how = f"torch.compile'd by Keras, {compiled} compiled regions" if compiled else "eager"
        return describe_program(marks, x.shape[1], f"one predict_on_batch ({how}; torch.profiler)")

    def _count_step(self, model: Any, x: np.ndarray, y: np.ndarray, train: bool) -> StepCount:
        """torch's ``FlopCounterMode`` over one ``train_on_batch`` / ``predict_on_batch`` (what the timed step
        calls), and the aten ops the host dispatched in it (torch.profiler: ops not called by another op)."""
        import keras
        from torch.profiler import ProfilerActivity, profile
        from torch.utils.flop_counter import FlopCounterMode

        inputs, labels = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)
        run = (lambda: model.train_on_batch(inputs, labels)) if train else (lambda: model.predict_on_batch(inputs))
        with FlopCounterMode(display=False) as counter, profile(activities=[ProfilerActivity.CPU]) as prof:
            run()  # one call under both: the counter sees the FLOPs, the profiler the ops dispatched
        dispatched = sum(1 for event in prof.events() if event.name.startswith("aten::")
                         and not (event.cpu_parent is not None and event.cpu_parent.name.startswith("aten::")))
        what = "train_on_batch (forward, backward, optimizer)" if train else "predict_on_batch"
        return StepCount(float(counter.get_total_flops()), f"torch FlopCounterMode over one {what}", dispatched,
                         f"aten ops dispatched one by one in one {what} (torch.profiler, nested ops not counted)")

    def own_op(self, name: str) -> Callable[[Any, Any], Any]:
        return getattr(torch, name)

    def gemms(self, a: Any, b: Any) -> dict[str, Callable[[], Any]]:
        """torch.matmul (MKL on CPU) and, on CPU, oneDNN's linear, the library torch's own LSTM runs on. MKL took
        the slower path on an AMD EPYC here (113 against oneDNN's 249 GFLOP/s at 1024³, one thread), and the
        share of a native LSTM's step against torch.matmul alone came out at 1.27-1.68."""
        paths = super().gemms(a, b)
        if a.device.type == "cpu" and torch.backends.mkldnn.is_available():
            # mkldnn_linear takes x @ w.T: the weight is b transposed, in oneDNN's layout (staged here, untimed).
            x, w = a.to_mkldnn(), b.t().contiguous().to_mkldnn()
            paths["oneDNN linear"] = lambda: torch.ops.aten.mkldnn_linear(x, w, None)
        return paths

    def phase_steps(self, model: Any, x: Any, y: Any) -> dict[str, Callable[[], Any]]:
        """What Keras's torch trainer runs (trainers/torch_trainer.py: forward, ``loss.backward()``,
        ``optimizer.apply``), cut after each phase; gradients are taken with ``torch.autograd.grad``, so no
        ``.grad`` is left behind, and "update" applies to a copy of the weights."""
        import keras

        loss_fn = keras.losses.BinaryCrossentropy()
        weights = [v.value for v in model.trainable_variables]
        labels = keras.ops.reshape(y, (-1, 1))

        def forward() -> Any:
            return loss_fn(labels, model(x, training=True))

        def forward_backward() -> Any:
            return torch.autograd.grad(forward(), weights)

        scratch = keras.optimizers.Adam.from_config(model.optimizer.get_config())
        copies = [keras.Variable(w.detach().clone()) for w in weights]
        scratch.build(copies)

        def update() -> Any:
            scratch.apply(forward_backward(), copies)
            return copies[0].value

        return {"forward": forward, "forward_backward": forward_backward, "update": update}

    def op_families(self, step: Callable[[], Any], calls: int) -> tuple[dict[str, float] | None, str]:
        """torch.profiler over ``calls`` calls: the wall time of the aten ops by family, by the rule JAX's and
        TF's traces use (``wall_seconds``: the innermost op holds the thread, ops running at once share it);
        the rest of the calls' wall time is Python and framework."""
        import time

        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for _ in range(calls):
                self.sync(step())
            wall = time.perf_counter() - start
        # Not each op's self time, which has no wall clock to add up to: on Keras's train step its sum ran from
        # 0.7x to 3.1x the timed step between runs, with no telling how much was the profiler's own cost.
        ops = [(e.thread, e.name, e.time_range.start / 1e6, (e.time_range.end - e.time_range.start) / 1e6)
               for e in prof.events() if e.device_type == torch.autograd.DeviceType.CPU]
        families: dict[str, float] = collections.defaultdict(float)
        for name, seconds in wall_seconds(ops, lambda name: not name.startswith("aten::")).items():
            families[family_of(name)] += seconds
        families["python and framework (outside any aten op)"] = max(wall - sum(families.values()), 0.0)
        return ({k: v / calls for k, v in families.items()},
                f"torch.profiler over {calls} calls: wall time of the aten ops (the innermost holds the thread, ops "
                "running at once share it), by family; the rest of the calls' wall time is Python and framework")

    def _traced_on_meta(self, args: tuple, kwargs: dict) -> bool:
        # Keras's torch backend infers output shapes by running layers on the "meta" device.
        for value in (*args, *kwargs.values()):
            if isinstance(value, torch.Tensor):
                return value.device.type == "meta"
        return False

    def _gpu_name(self) -> str | None:
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None

    def gpu_count(self) -> int:
        return torch.cuda.device_count()

    def sync(self, value: Any = None) -> None:
        if self.device.kind == "gpu":
            torch.cuda.synchronize()  # CUDA kernels are queued; the host returns at once

    def _reset_device_peak(self) -> None:
        torch.cuda.reset_peak_memory_stats()

    def _device_peak(self) -> int | None:
        return torch.cuda.max_memory_allocated()

    def device_memory_in_use(self) -> int | None:
        return torch.cuda.memory_reserved() if self.device.kind == "gpu" else None

    def _install_backend_lstm_spies(self) -> None:
        try:
            # import_module: the package re-exports a function named `rnn` over the submodule.
            torch_rnn = importlib.import_module("keras.src.backend.torch.rnn")
        except ImportError:
            return
        self._wrap_lstm_kernel(torch_rnn, "_cudnn_lstm", lambda out: vf_lstm_label("cudnn", out))
        self._wrap_lstm_kernel(torch_rnn, "_fallback_lstm", loop_label)

    def _fused_label(self, label: str, out: Any) -> str:
        # Keras calls torch._VF.lstm; ATen picks cuDNN or its own CUDA cell by dtype below it.
        return vf_lstm_label(label, out)


def _inside(event: Any, name: str) -> bool:
    """Whether a profiler event ran inside an op called ``name``."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name == name:
            return True
        parent = parent.cpu_parent
    return False
