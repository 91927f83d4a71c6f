"""The PyTorch adapter; imported only when KERAS_BACKEND is torch (see bench/backends/__init__.py)."""

from __future__ import annotations

import collections
import importlib
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch  # absolute import: the real PyTorch, not this module

from bench.backends.base import Adapter, StepCount, describe_program, family_of


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
        return {"torch.get_float32_matmul_precision": torch.get_float32_matmul_precision(),
                "torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32}

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
        """Op names torch's profiler saw in one inference call (what ``predict_on_batch`` runs)."""
        import keras
        from torch.profiler import ProfilerActivity, profile

        tensor = keras.ops.convert_to_tensor(x)
        with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
            model(tensor, training=False)
        ops: collections.Counter = collections.Counter()
        for event in prof.key_averages():
            ops[event.key] += event.count
        marks = [("cudnn", "aten::_cudnn_rnn", ops["aten::_cudnn_rnn"], 1),
                 ("onednn", "aten::mkldnn_rnn_layer", ops["aten::mkldnn_rnn_layer"], 1),
                 ("loop", "aten::mm/addmm", ops["aten::mm"] + ops["aten::addmm"], x.shape[1])]
        if not (marks[0][2] or marks[1][2]):  # aten::lstm on neither fused kernel: ATen's own
            marks.append(("aten", "aten::lstm", ops["aten::lstm"], 1))
        return describe_program(marks, x.shape[1], "one forward pass (torch.profiler)")

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
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                self.sync(step())
        families: dict[str, float] = collections.defaultdict(float)
        total_s = 0.0
        for event in prof.events():
            if event.cpu_parent is None:  # a top-level range: the whole call's host time is under these
                total_s += event.cpu_time_total / 1e6
            if event.name.startswith("aten::"):
                families[family_of(event.name)] += event.self_cpu_time_total / 1e6
        families["python and framework (outside any aten op)"] = max(total_s - sum(families.values()), 0.0)
        return ({k: v / calls for k, v in families.items()},
                f"torch.profiler over {calls} calls: self time of aten ops by family; the rest of the calls' time "
                "is Python and framework")

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
        self._wrap_lstm_kernel(torch_rnn, "_cudnn_lstm", "cudnn")
        self._wrap_lstm_kernel(torch_rnn, "_fallback_lstm", "fused input projection + python per-timestep loop")
