"""The JAX adapter; imported only when KERAS_BACKEND is jax (see bench/backends/__init__.py)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import re
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import jax  # absolute import: the real JAX, not this module
import numpy as np

from bench.backends.base import Adapter, StepCount, describe_program, wall_seconds, xla_family
from bench.fingerprint import usable_cpus

# The CUDA plugin distributions JAX loads for NVIDIA GPUs (jax[cuda12] / jax[cuda13]).
CUDA_PLUGINS = ("jax-cuda12-plugin", "jax-cuda13-plugin")
CUDA_PJRT = ("jax-cuda12-pjrt", "jax-cuda13-pjrt")


class JaxAdapter(Adapter):
    name = "jax"
    packages = ("jax",)
    generic_loop = "lax.scan"
    # Keras 3.15's JAX lstm / bidirectional_lstm run jax.experimental.rnn.lstm: a cuDNN custom call on CUDA.
    fused_lstm_label = "cudnn (jax.experimental.rnn)"
    fused_bidirectional_label = "cudnn (fused bidirectional, jax.experimental.rnn)"
    # JAX has no reset: its peak_bytes_in_use is for the process's lifetime.
    device_peak_scope = "process lifetime"
    distributed_module = "bench.distributed.jax"
    native_module = "bench.native.jax"
    supports_half_lstm_on_gpu = False
    why_not: ClassVar[dict[str, str]] = {
        "supports_flush_denormals": "it is a PyTorch switch; XLA:CPU flushes denormals already "
                                    "(each record's runtime.denormals shows what was observed)",
        "supports_half_lstm_on_gpu": "on a GPU Keras's JAX LSTM takes jax.experimental.rnn's cuDNN kernel, whose "
                                     "lowering (jaxlib/gpu_rnn.py: _rnn_fwd_lowering) takes float32 and float64 "
                                     "only: a bfloat16 or float16 step fails with \"ValueError: Unknown output "
                                     "type\" when Keras's jitted step compiles, outside Keras's fallback to "
                                     "lax.scan",
    }

    def __init__(self) -> None:
        super().__init__()
        self._threads_how = "not set: XLA:CPU sizes its thread pools to the CPUs this process may use"

    def _set_threads(self, threads: int) -> None:
        """Restrict the CPUs this process may use to ``threads``, before XLA:CPU starts.

        XLA:CPU has no thread-count option (XLA_FLAGS offers none in jaxlib 0.10): it sizes its
        pools to the CPUs the process may run on (its affinity) when its client starts, on the
        first ``jax.devices()``. Narrowing the affinity before that is the one way to set it.
        """
        usable = sorted(os.sched_getaffinity(0))
        if threads > len(usable):
            self._threads_how = (f"not set: {threads} asked for, but this process may use {len(usable)} CPUs; "
                                 "XLA:CPU sizes its thread pools to those")
            return
        if threads == len(usable):
            return
        if _backends_started():
            self._threads_how = (f"not set: XLA:CPU had already started with the {len(usable)} CPUs this process "
                                 f"may use; {threads} asked for")
            return
        os.sched_setaffinity(0, usable[:threads])
        self._threads_how = (f"CPU affinity narrowed to {usable[:threads]} before XLA:CPU started "
                             "(XLA sizes its thread pools to the CPUs the process may use)")

    def _thread_settings(self) -> dict:
        return {"cpus_usable": usable_cpus(), "how": self._threads_how}

    def _denormal_probe(self, x: np.ndarray, ones: np.ndarray) -> np.ndarray:
        # Jitted, as the benchmark's steps are; ``ones`` is an argument so XLA cannot fold the product away.
        return np.asarray(jax.jit(lambda a, b: a * b)(x, ones))

    def _matmul_precision(self) -> dict:
        value = jax.config.jax_default_matmul_precision
        return {"jax_default_matmul_precision": value if value is not None else "None (XLA's default for the device)"}

    def _set_strict_fp32(self) -> None:
        # "highest": float32 dots in full float32 on GPU, and jax.experimental.rnn's cuDNN LSTM without TF32.
        jax.config.update("jax_default_matmul_precision", "highest")

    def _tf32_switches(self) -> tuple[bool, bool, str]:
        from jax.experimental import rnn

        value = jax.config.jax_default_matmul_precision
        # XLA's GPU default ("default", "high", "tensorfloat32") may use TF32 for float32 dots; only "highest"
        # (also spelled "float32") keeps full float32.
        matmul = str(value).lower() not in ("highest", "float32")
        try:  # jax.experimental.rnn's own rule for its cuDNN LSTM's cudnn_allow_tf32
            cudnn = rnn._lstm_cudnn_allow_tf32(None)
            rule = "jax.experimental.rnn._lstm_cudnn_allow_tf32"
        except (AttributeError, NotImplementedError, ValueError) as exc:
            cudnn, rule = matmul, f"cuDNN LSTM rule not read ({type(exc).__name__}): taken as the matmuls'"
        return matmul, cudnn, f"jax_default_matmul_precision = {value} (dots); {rule} = {cudnn}"

    def _compute_capability(self) -> tuple[int, int] | None:
        found = getattr(jax.local_devices()[0], "compute_capability", None)  # "9.0" on CUDA devices
        if not found:
            return None
        major, _, minor = str(found).partition(".")
        return int(major), int(minor or 0)

    def gpu_support(self) -> dict:
        plugin = _installed(CUDA_PLUGINS)
        try:
            visible = any(d.platform == "gpu" for d in jax.devices())
        except RuntimeError:
            visible = False
        detail = f"jax {jax.__version__} with {plugin}" if plugin else f"jax {jax.__version__} without a CUDA plugin"
        return {"cuda_build": plugin is not None, "gpu_visible": visible, "detail": detail}

    def device_facts(self) -> dict:
        facts = {"jax": jax.__version__, "jaxlib": importlib.metadata.version("jaxlib"),
                 "cuda_plugin": _installed(CUDA_PLUGINS) or "not installed",
                 "cuda_pjrt": _installed(CUDA_PJRT) or "not installed", "platform": jax.default_backend()}
        try:  # present only with a CUDA plugin; jaxlib has no public accessor for these
            from jax._src.lib import cuda_versions
        except ImportError:
            cuda_versions = None
        if cuda_versions is not None:
            for key, getter in (("cuda_runtime", "cuda_runtime_get_version"), ("cudnn", "cudnn_get_version"),
                                ("cuda_driver", "cuda_driver_get_version")):
                fn = getattr(cuda_versions, getter, None)
                facts[key] = fn() if fn is not None else "not reported"
        return facts

    def cuda_major(self) -> int | None:
        found = re.match(r"jax-cuda(\d+)-plugin ", _installed(CUDA_PLUGINS) or "")
        return int(found.group(1)) if found else None

    def load_cuda_libraries(self) -> str:
        # The CUDA plugin's initialize() loads cuDNN, NCCL and cuBLAS, then looks for a GPU; without one JAX logs a
        # traceback and goes on with the CPU, which is all this check needs.
        quiet = logging.getLogger("jax._src.xla_bridge")
        was, quiet.disabled = quiet.disabled, True
        try:
            jax.devices()
        except RuntimeError as exc:
            return f"jax.devices() (the CUDA plugin's initialize() loads them), which failed: {exc}"
        finally:
            quiet.disabled = was
        return "jax.devices(): the CUDA plugin's initialize() loads them before it looks for a GPU"

    def _program_kernel(self, model: Any, x: np.ndarray) -> str:
        """Loops and cuDNN custom calls in the compiled HLO of the model's forward pass (XLA's own program)."""
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        forward = jax.jit(lambda tv, ntv, inputs: model.stateless_call(tv, ntv, inputs, training=False)[0])
        hlo = forward.lower(trainable, non_trainable, x).compile().as_text()
        marks = [("cudnn", "cuDNN RNN custom call", len(re.findall(r'custom_call_target="\w*dnn_rnn', hlo)), 1),
                 ("loop", "HLO while loop", len(re.findall(r"\swhile\(", hlo)), 1)]
        return describe_program(marks, x.shape[1], "the compiled HLO of one forward pass")

    def _stateless(self, model: Any, train: bool) -> tuple[dict, tuple]:
        """The step written with Keras's stateless APIs, as Keras's JAX trainer runs it: pure functions
        ("forward": the loss, "forward_backward": loss and gradients, "update": those and Adam's update; for
        predict only "forward": the model's output) and their arguments but the batch."""
        import keras

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        if not train:
            return {"forward": lambda tv, ntv, inputs: model.stateless_call(tv, ntv, inputs, training=False)[0]}, (
                trainable, non_trainable)
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        optimizer_values = [v.value for v in optimizer.variables]

        def loss(tv, ntv, inputs, labels):
            predictions, _ = model.stateless_call(tv, ntv, inputs, training=True)
            labels = keras.ops.reshape(labels, keras.ops.shape(predictions))
            return keras.ops.mean(keras.losses.binary_crossentropy(labels, predictions))

        def forward_backward(tv, ntv, inputs, labels):
            return jax.value_and_grad(loss)(tv, ntv, inputs, labels)

        def update(tv, ntv, ov, inputs, labels):
            value, grads = forward_backward(tv, ntv, inputs, labels)
            return (value, *optimizer.stateless_apply(ov, grads, tv))

        return ({"forward": loss, "forward_backward": forward_backward, "update": update},
                (trainable, non_trainable, optimizer_values))

    def _count_step(self, model: Any, x: np.ndarray, y: np.ndarray, train: bool) -> StepCount:
        """Matrix-product FLOPs of the step's jaxpr, scan bodies times their length (``_stateless``).

        XLA's own ``cost_analysis()`` of the lowered step is given beside it, but is not the count: it
        counts a while loop's body once, and the LSTM runs as a while loop of maxlen steps.
        """
        functions, state = self._stateless(model, train)
        step = functions["update" if train else "forward"]
        args = (*state, x, y) if train else (*state, x)
        flops, loops = jaxpr_matmul_flops(jax.make_jaxpr(step)(*args).jaxpr)
        cost = jax.jit(step).lower(*args).cost_analysis()
        cost = (cost[0] if isinstance(cost, list) else cost) or {}
        xla = f"{cost['flops']:.4g}" if "flops" in cost else "none"
        where = "train step (value_and_grad + optimizer.stateless_apply)" if train else "forward pass"
        counter = (f"jaxpr dot_general FLOPs of the {where}, {loops} scan(s) times their length "
                   f"(XLA cost_analysis: {xla} FLOPs, each while-loop body once)")
        jitted = not getattr(model, "run_eagerly", False)
        return StepCount(flops, counter, 1 if jitted else None,
                         "one jitted call per step (Keras's JAX trainer)" if jitted else "not observed: run_eagerly")

    def compiled(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return jax.jit(fn)

    def dispatches_per_op(self) -> bool:
        return False

    def own_op(self, name: str) -> Callable[[Any, Any], Any]:
        return getattr(jax.numpy, name)

    def phase_steps(self, model: Any, x: Any, y: Any) -> dict[str, Callable[[], Any]]:
        functions, state = self._stateless(model, train=True)
        # Copies: Keras's train step, timed between these calls, donates the variables' buffers.
        tv, ntv, ov = jax.tree.map(lambda a: jax.numpy.array(a, copy=True), state)
        forward, forward_backward, update = (jax.jit(functions[k]) for k in ("forward", "forward_backward", "update"))
        return {"forward": lambda: forward(tv, ntv, x, y), "forward_backward": lambda: forward_backward(tv, ntv, x, y),
                "update": lambda: update(tv, ntv, ov, x, y)}

    def op_families(self, step: Callable[[], Any], calls: int) -> tuple[dict[str, float] | None, str]:
        """JAX's profiler (``jax.profiler.trace``, its Perfetto JSON) over ``calls`` calls: the self time of
        the thunks XLA ran on its own threads, by family; the rest of the calls' wall time is Python,
        Keras and dispatch."""
        import glob
        import gzip
        import json
        import tempfile
        import time

        with tempfile.TemporaryDirectory() as folder:
            with jax.profiler.trace(folder, create_perfetto_trace=True):
                start = time.perf_counter()
                for _ in range(calls):
                    self.sync(step())
                wall = time.perf_counter() - start
            found = glob.glob(os.path.join(folder, "**", "perfetto_trace.json.gz"), recursive=True)
            if not found:
                return None, "not profiled: jax.profiler.trace wrote no Perfetto trace"
            with gzip.open(found[0]) as f:
                trace = json.load(f)
        events = trace["traceEvents"] if isinstance(trace, dict) else trace
        threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
                   if e.get("ph") == "M" and e.get("name") == "thread_name"}
        xla = [((e["pid"], e["tid"]), e["name"], e["ts"] / 1e6, e.get("dur", 0) / 1e6) for e in events
               if e.get("ph") == "X" and threads.get((e["pid"], e["tid"]), "").startswith("tf_XLA")]
        families: dict[str, float] = {}
        # The executor's own events hold no op: waiting for its workers, or between thunks.
        for name, seconds in wall_seconds(xla, lambda name: name.startswith(("ThunkExecutor", "Threadpool"))).items():
            family = xla_family(name)
            families[family] = families.get(family, 0.0) + seconds
        families["python and framework (outside XLA's ops)"] = max(wall - sum(families.values()), 0.0)
        return ({k: v / calls for k, v in families.items()},
                f"jax.profiler.trace over {calls} calls: wall time of the XLA thunks on XLA's threads (thunks running "
                "at once share it), by family; the rest of the calls' wall time is Python, Keras and dispatch")

    def _gpu_name(self) -> str | None:
        # This process's own devices: under --processes, jax.devices() also lists the other ranks' GPUs.
        errors: list[str] = []
        try:
            with _plugin_errors(errors):
                gpus = [d for d in jax.local_devices() if d.platform == "gpu"]
        finally:  # JAX logs why its CUDA plugin did not start, and raises something shorter (or nothing)
            self._gpu_error = "; ".join(errors)
        return gpus[0].device_kind if gpus else None

    def gpu_count(self) -> int:
        return len([d for d in jax.local_devices() if d.platform == "gpu"])

    def simulate_devices(self, n: int) -> str:
        """N XLA host-platform CPU devices: XLA reads the flag when its CPU client starts (first jax.devices())."""
        flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
                 if not f.startswith("--xla_force_host_platform_device_count")]
        os.environ["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={n}"])
        return "XLA host-platform devices (XLA_FLAGS=--xla_force_host_platform_device_count)"

    def sync(self, value: Any = None) -> None:
        jax.block_until_ready(value)  # JAX dispatches asynchronously

    def _reset_device_peak(self) -> None:
        """Nothing: JAX has no reset (see ``device_peak_scope``)."""

    def _device_peak(self) -> int | None:
        # local_devices: on rank >= 1 of --processes, jax.devices()[0] is rank 0's GPU, which this rank cannot read.
        return (jax.local_devices()[0].memory_stats() or {}).get("peak_bytes_in_use")

    def device_memory_in_use(self) -> int | None:
        if self.device.kind != "gpu":
            return None
        stats = jax.local_devices()[0].memory_stats() or {}
        return stats.get("pool_bytes", stats.get("bytes_reserved", stats.get("bytes_in_use")))


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        cause = f": {record.exc_info[0].__name__}: {record.exc_info[1]}" if record.exc_info else ""
        self.into.append(record.getMessage() + cause)


@contextlib.contextmanager
def _plugin_errors(into: list[str]) -> Iterator[None]:
    """Warnings and errors JAX logs inside (a CUDA plugin that failed to start, with its exception), into ``into``."""
    logger = logging.getLogger("jax._src.xla_bridge")
    handler = _Collect(into)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _installed(distributions: tuple[str, ...]) -> str | None:
    """'name version' of the first installed distribution of ``distributions``, else None."""
    for name in distributions:
        try:
            return f"{name} {importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _backends_started() -> bool:
    """Whether JAX's backends (and so XLA:CPU's thread pools) exist already; False where JAX cannot say."""
    try:
        from jax._src import xla_bridge
    except ImportError:
        return False
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started()) if started is not None else False


def jaxpr_matmul_flops(jaxpr: Any) -> tuple[float, int]:
    """(FLOPs of every dot_general in ``jaxpr``, 2 per multiply-add; scans counted) with sub-jaxprs walked.

    A scan's body counts ``length`` times; a cond counts its costliest branch; a while loop (whose trip
    count a jaxpr does not know) raises, rather than be counted once.
    """
    total, scans = 0.0, 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            (lhs_contract, _), (lhs_batch, _) = eqn.params["dimension_numbers"]
            lhs, rhs = (v.aval.shape for v in eqn.invars)
            contract = int(np.prod([lhs[d] for d in lhs_contract]))
            batch = int(np.prod([lhs[d] for d in lhs_batch]))
            total += 2 * float(np.prod(lhs)) * float(np.prod(rhs)) / contract / batch
            continue
        if name == "while":
            raise ValueError("a while loop in the step: its trip count is not in the jaxpr")
        subs = [_jaxpr_of(v) for v in eqn.params.values()]
        subs += [_jaxpr_of(b) for v in eqn.params.values() if isinstance(v, tuple | list) for b in v]
        counted = [jaxpr_matmul_flops(sub) for sub in subs if sub is not None]
        if not counted:
            continue
        if name == "cond":
            total += max(flops for flops, _ in counted)
            scans += max(n for _, n in counted)
        else:
            times = eqn.params["length"] if name == "scan" else 1
            total += times * sum(flops for flops, _ in counted)
            scans += sum(n for _, n in counted) + (name == "scan")
    return total, scans


def _jaxpr_of(value: Any) -> Any:
    """The jaxpr inside a ClosedJaxpr or Jaxpr parameter, else None."""
    inner = getattr(value, "jaxpr", None)
    if inner is not None and hasattr(inner, "eqns"):
        return inner
    return value if hasattr(value, "eqns") else None
