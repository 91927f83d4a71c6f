"""The TensorFlow adapter; imported only when KERAS_BACKEND is tensorflow (see bench/backends/__init__.py)."""

from __future__ import annotations

import collections
import ctypes
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf  # absolute import: the real TensorFlow, not this module

from bench.backends.base import Adapter, StepCount, describe_program, family_of, wall_seconds, xla_family


class TensorFlowAdapter(Adapter):
    name = "tensorflow"
    packages = ("tensorflow", "tensorflow-cpu")
    generic_loop = "tf.while_loop"
    fused_bidirectional_label = None  # Keras 3.15's TensorFlow backend has no fused bidirectional LSTM
    distributed_module = "bench.distributed.tensorflow"
    supports_jit_on_gpu = False
    why_not: ClassVar[dict[str, str]] = {
        "supports_jit_on_gpu": "where a GPU is visible Keras's TensorFlow LSTM sets supports_jit=False (its cuDNN "
                               "kernel is not XLA-compatible: keras/src/layers/rnn/lstm.py), so Keras compiles the "
                               "step without XLA",
        "native_module": "no native reference for the tensorflow backend: a TensorFlow user's LSTM is tf.keras, "
                         "which is Keras itself",
        "supports_flush_denormals": "it is a PyTorch switch; TensorFlow's CPU threads flush denormals already "
                                    "(each record's runtime.denormals shows what was observed)",
    }

    def _count_step(self, model: Any, x: np.ndarray, y: np.ndarray, train: bool) -> StepCount:
        # TensorFlow's FLOP counter (tf.compat.v1.profiler's float_operation) walks the graph statically:
        # it counts a while loop's body once, and Keras's TensorFlow LSTM runs as a while loop of maxlen steps.
        graph = not getattr(model, "run_eagerly", False)
        return StepCount(None, "no counter: TensorFlow's graph profiler counts a while-loop body once, and the "
                         "LSTM is a while loop of maxlen steps", 1 if graph else None,
                         "one tf.function call per step (Keras's train/predict function)" if graph
                         else "not observed: run_eagerly")

    def compiled(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return tf.function(fn)

    def dispatches_per_op(self) -> bool:
        return False

    def own_op(self, name: str) -> Callable[[Any, Any], Any]:
        return getattr(tf, name)

    def op_families(self, step: Callable[[], Any], calls: int) -> tuple[dict[str, float] | None, str]:
        """TensorFlow's profiler (``tf.profiler.experimental``, its XPlane) over ``calls`` calls: the self time
        of TF's kernels (named by op type) and of XLA's thunks where the step is XLA-compiled, by family; the
        rest of the calls' wall time is Python, Keras and the executor."""
        import glob
        import tempfile
        import time

        from tensorflow.tsl.profiler.protobuf import xplane_pb2

        with tempfile.TemporaryDirectory() as folder:
            tf.profiler.experimental.start(folder)
            try:
                start = time.perf_counter()
                for _ in range(calls):
                    self.sync(step())
                wall = time.perf_counter() - start
            finally:
                tf.profiler.experimental.stop()
            found = glob.glob(os.path.join(folder, "**", "*.xplane.pb"), recursive=True)
            if not found:
                return None, "not profiled: tf.profiler.experimental wrote no XPlane"
            space = xplane_pb2.XSpace()
            space.ParseFromString(Path(found[0]).read_bytes())
        events, kinds = [], {}
        for plane in space.planes:
            if plane.name != "/host:CPU":
                continue
            for line in plane.lines:
                for e in line.events:
                    meta = plane.event_metadata[e.metadata_id]
                    key = (line.id, meta.name)
                    # A TF kernel's display name is its op type ("MatMul"); XLA's thunks run on XLA's threads.
                    kinds[key] = (family_of(meta.display_name) if meta.display_name
                                  else xla_family(meta.name) if line.name.startswith("tf_XLA") else None)
                    events.append((line.id, key, (line.timestamp_ns * 1000 + e.offset_ps) / 1e12,
                                   e.duration_ps / 1e12))
        families: dict[str, float] = {}
        # Executor and thread-pool events are no kernel: where they are innermost, the thread holds no op.
        for key, seconds in wall_seconds(events, lambda key: kinds.get(key) is None).items():
            families[kinds[key]] = families.get(kinds[key], 0.0) + seconds
        families["python and framework (outside TF's kernels)"] = max(wall - sum(families.values()), 0.0)
        return ({k: v / calls for k, v in families.items()},
                f"tf.profiler.experimental over {calls} calls: wall time of TF kernels (by op type) and XLA thunks "
                "(kernels running at once share it), by family; the rest of the calls' wall time is Python, Keras "
                "and TF's executor")

    def phase_steps(self, model: Any, x: Any, y: Any) -> dict[str, Callable[[], Any]]:
        """What Keras's TensorFlow trainer runs in its tf.function (forward, ``GradientTape``, ``optimizer.apply``),
        cut after each phase, compiled as Keras compiled it (``model.jit_compile``); "update" applies to copies."""
        import keras

        loss_fn = keras.losses.BinaryCrossentropy()
        labels = tf.reshape(y, (-1, 1))
        jit = bool(getattr(model, "jit_compile", False))

        @tf.function(jit_compile=jit)
        def forward() -> Any:
            return loss_fn(labels, model(x, training=True))

        @tf.function(jit_compile=jit)
        def forward_backward() -> Any:
            with tf.GradientTape() as tape:
                loss = loss_fn(labels, model(x, training=True))
            return tape.gradient(loss, model.trainable_variables)

        scratch = keras.optimizers.Adam.from_config(model.optimizer.get_config())
        copies = [keras.Variable(tf.identity(v.value)) for v in model.trainable_variables]
        scratch.build(copies)

        @tf.function(jit_compile=jit)
        def update() -> Any:
            with tf.GradientTape() as tape:
                loss = loss_fn(labels, model(x, training=True))
            scratch.apply(tape.gradient(loss, model.trainable_variables), copies)
            return loss

        return {"forward": forward, "forward_backward": forward_backward, "update": update}

    def _set_threads(self, threads: int) -> None:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)

    def _thread_settings(self) -> dict:
        return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                "how": "tf.config.threading.set_intra_op/inter_op_parallelism_threads"}

    def _denormal_probe(self, x: np.ndarray, ones: np.ndarray) -> np.ndarray:
        # Inside a tf.function, as Keras runs the step (eager gives the same on TF's thread pools).
        return tf.function(lambda a, b: a * b)(tf.constant(x), tf.constant(ones)).numpy()

    def _matmul_precision(self) -> dict:
        return {"tensor_float_32_execution_enabled": tf.config.experimental.tensor_float_32_execution_enabled()}

    def _set_strict_fp32(self) -> None:
        tf.config.experimental.enable_tensor_float_32_execution(False)

    def _tf32_switches(self) -> tuple[bool, bool, str]:
        # One switch for matmuls, convolutions and cuDNN RNNs alike.
        on = tf.config.experimental.tensor_float_32_execution_enabled()
        return on, on, f"tf.config.experimental.tensor_float_32_execution_enabled() = {on} (matmuls and cuDNN RNNs)"

    def _compute_capability(self) -> tuple[int, int] | None:
        gpus = tf.config.list_physical_devices("GPU")
        found = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") if gpus else None
        return tuple(found) if found else None

    def gpu_support(self) -> dict:
        built = tf.test.is_built_with_cuda()
        detail = (f"tensorflow {tf.__version__} built with CUDA" if built
                  else f"tensorflow {tf.__version__} built without CUDA (tensorflow-cpu?)")
        return {"cuda_build": built, "gpu_visible": built and bool(tf.config.list_physical_devices("GPU")),
                "detail": detail}

    def device_facts(self) -> dict:
        build = tf.sysconfig.get_build_info()
        return {"tensorflow": tf.__version__, "cuda_build": bool(build.get("is_cuda_build")),
                "cuda": build.get("cuda_version"), "cudnn": build.get("cudnn_version")}

    def cuda_major(self) -> int | None:
        build = tf.sysconfig.get_build_info()
        return int(str(build["cuda_version"]).split(".")[0]) if build.get("is_cuda_build") else None

    def load_cuda_libraries(self) -> str:
        """cudart as TensorFlow loads it (at import); cuDNN and NCCL from where TensorFlow's loader would take them.

        TensorFlow dlopens cuDNN and NCCL only once it has found a GPU, searching LD_LIBRARY_PATH, then the
        RUNPATH of its libraries: nvidia/<lib>/lib beside the tensorflow package (``readelf -d
        libtensorflow_framework.so.2``, 2.21). They are loaded here from the first of those that holds them.
        """
        build = tf.sysconfig.get_build_info()
        cudnn = f"libcudnn.so.{str(build.get('cudnn_version') or 9).split('.')[0]}"
        site = Path(tf.__file__).resolve().parents[1]
        loaded = []
        for name, folder in ((cudnn, "cudnn"), ("libnccl.so.2", "nccl")):
            search = [*filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)),
                      str(site / "nvidia" / folder / "lib")]
            path = next((Path(d) / name for d in search if (Path(d) / name).is_file()), None)
            if path is not None:
                ctypes.CDLL(str(path))
                loaded.append(name)
        return (f"import tensorflow (it loads cudart); {', '.join(loaded) or 'neither cuDNN nor NCCL'} loaded by the "
                "check from LD_LIBRARY_PATH, else TensorFlow's RUNPATH (TensorFlow itself loads them on a GPU only)")

    def _program_kernel(self, model: Any, x: np.ndarray) -> str:
        """Op types of the graph TensorFlow runs for one inference call (the tf.function Keras would trace)."""
        fn = tf.function(lambda inputs: model(inputs, training=False))
        graph = fn.get_concrete_function(tf.TensorSpec(x.shape, tf.as_dtype(x.dtype))).graph
        ops = collections.Counter(op.type for op in graph.get_operations())
        cudnn = sum(n for op, n in ops.items() if op.startswith("CudnnRNN"))
        marks = [("cudnn", "CudnnRNN* op", cudnn, 1), ("loop", "While op", ops["While"] + ops["StatelessWhile"], 1)]
        return describe_program(marks, x.shape[1], "the traced graph of one forward pass")

    def _gpu_name(self) -> str | None:
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)

    def gpu_count(self) -> int:
        return len(tf.config.list_physical_devices("GPU"))

    def simulate_devices(self, n: int) -> str:
        """N logical CPU devices, which TensorFlow allows only before its runtime starts."""
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
        return "logical CPU devices (tf.config.set_logical_device_configuration)"

    def sync(self, value: Any = None) -> None:
        if value is not None and hasattr(value, "numpy"):
            value.numpy()  # TensorFlow's eager ops finish before .numpy() returns
        elif self.device.kind == "gpu":  # nothing to read back (None, or a nest such as a list of gradients)
            tf.test.experimental.sync_devices()

    def _reset_device_peak(self) -> None:
        tf.config.experimental.reset_memory_stats("GPU:0")

    def _device_peak(self) -> int | None:
        return tf.config.experimental.get_memory_info("GPU:0")["peak"]

    def device_memory_in_use(self) -> int | None:
        return tf.config.experimental.get_memory_info("GPU:0")["current"] if self.device.kind == "gpu" else None
