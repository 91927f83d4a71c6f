"""The backend adapters: one per backend, picked once; the device asked for once; the same results as before."""

import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import backends
from bench.backends import BackendError, DeviceInfo

pytestmark = pytest.mark.per_backend

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
HOST_KEYS = {"host_rss_growth_mib", "host_peak_rss_mib"}


def fresh_adapter() -> backends.Adapter:
    """A new adapter of the selected backend, so that a test's changes stay away from ``current()``."""
    return type(backends.current())()


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def json_from(code: str) -> dict:
    """Run ``code`` in a fresh process (it must succeed); the JSON it printed last."""
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_current_is_the_selected_backends_adapter():
    adapter = backends.current()
    assert isinstance(adapter, backends.Adapter)
    assert adapter.name == backends.selected_backend()
    assert type(adapter).__module__ == f"bench.backends.{adapter.name}"
    assert backends.current() is adapter  # created once


def test_adapter_module_imports_the_real_library():
    # bench/backends/jax.py etc. must not shadow jax etc.: their `import jax` is absolute.
    name = backends.selected_backend()
    library = importlib.import_module(name)
    assert library is not importlib.import_module(f"bench.backends.{name}")
    assert BENCH not in Path(library.__file__).resolve().parents


def test_importing_the_package_imports_no_backend():
    proc = run_python("import sys, bench.backends; "
                      "print([m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules])")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


# How to read the thread count back. XLA:CPU has no thread option: it sizes its pools to the CPUs the
# process may use, so the JAX adapter narrows the process's CPU affinity before XLA starts.
THREADS_READBACK = {
    "torch": "import torch; threads = [torch.get_num_threads()]",
    "tensorflow": "import tensorflow as tf; threads = [tf.config.threading.get_intra_op_parallelism_threads(), "
                  "tf.config.threading.get_inter_op_parallelism_threads()]",
    "jax": "import os; threads = [len(os.sched_getaffinity(0))]",
}
# `make test` pins each of its lanes to one CPU: these processes first take back every CPU the machine lets them
# (where a cpuset forbids it, they keep what they have), so that narrowing to one can be seen.
WIDEN = ("import contextlib, os\n"
         "with contextlib.suppress(OSError):\n"
         "    os.sched_setaffinity(0, range(os.cpu_count()))\n")


def test_configure_cpu_resolves_the_cpu_and_sets_threads():
    # A fresh process: TensorFlow refuses a new thread count once its runtime has started.
    name = backends.selected_backend()
    found = json_from(
        WIDEN +
        "import json\n"
        "usable = len(os.sched_getaffinity(0))\n"
        "from bench import backends\n"
        "backends.prepare_environment('cpu')\n"
        "adapter = backends.configure('cpu', 1)\n"
        f"{THREADS_READBACK[name]}\n"
        "print(json.dumps({'name': adapter.name, 'device': adapter.device.as_dict(), 'threads': threads,\n"
        "                  'recorded': adapter.runtime_settings()['threads'],\n"
        "                  'current': backends.current() is adapter, 'usable': usable}))\n"
    )
    assert found["name"] == name and found["current"]
    assert found["device"]["device"] == "cpu" and found["device"]["device_name"]
    assert set(found["threads"]) == {1}
    recorded = found["recorded"]
    assert recorded["requested"] == 1 and recorded["how"]
    if name == "jax":
        assert recorded["cpus_usable"] == 1
        if found["usable"] > 1:
            assert recorded["how"].startswith("CPU affinity narrowed to")
    else:
        assert recorded["intra_op"] == 1 and recorded["inter_op"] >= 1


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs a machine of two CPUs to narrow the affinity to one")
def test_default_threads_are_the_cpus_this_process_may_use():
    # Under a narrowed affinity (as taskset or a container's cpuset gives), os.cpu_count() still says all.
    proc = run_python(
        "import os\n"
        "os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:1])\n"
        "from bench import settings\n"
        "defaults = {flag.removeprefix('--').replace('-', '_'): kw.get('default') for flag, kw in settings.OPTIONS}\n"
        "print(settings.from_options(defaults.get).threads, os.cpu_count())\n"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    threads, cpu_count = map(int, proc.stdout.split())
    assert threads == 1 and cpu_count >= 2


@pytest.mark.skipif(backends.selected_backend() == "tensorflow", reason="TensorFlow is this process's backend")
@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="TensorFlow is not installed")
def test_tensorflow_stays_out_of_the_jax_and_torch_processes():
    # What the plugin's model fixture does (seed, build, initialize), then a train and a predict step.
    # Keras imports TensorFlow whenever it is installed: in set_random_seed and in Bidirectional's
    # constructor (serialize_keras_object). The adapter set-up keeps it out.
    found = json_from(
        "import json, sys\n"
        "import numpy as np\n"
        "from bench import backends\n"
        "backends.prepare_environment('cpu')\n"
        "backends.configure('cpu', 1)\n"
        "import keras\n"
        "from model import build_model, initialize_weights\n"
        "keras.utils.set_random_seed(3)\n"
        "model = build_model(max_features=50, embed_dim=4, lstm_units=2, maxlen=6)\n"
        "initialize_weights(model, 3)\n"
        "x = np.ones((2, 6), 'int32')\n"
        "model.train_on_batch(x, np.ones(2, 'float32'))\n"
        "model.predict_on_batch(x)\n"
        "try:\n"
        "    import tensorflow\n"
        "    refused = None\n"
        "except ImportError as exc:\n"
        "    refused = str(exc)\n"
        "print(json.dumps({'loaded': sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow'),\n"
        "                  'refused': refused}))\n"
    )
    assert found["loaded"] == []
    assert "kerasbench keeps tensorflow out of this" in found["refused"]


def test_keep_out_refuses_a_library_already_loaded():
    with pytest.raises(BackendError, match="json is already imported"):
        backends.keep_out(("json",), "test")


def test_runtime_settings_record_threads_denormals_and_matmul_precision():
    adapter = backends.current()
    found = adapter.runtime_settings()
    assert set(found) == {"threads", "denormals", "float32_matmul"}
    assert found["float32_matmul"] and all(v is not None for v in found["float32_matmul"].values())
    # Observed with a probe: TensorFlow's and XLA's CPU threads flush denormals, PyTorch's do not by default.
    if adapter.device.kind == "cpu":
        expected = "kept (not flushed)" if adapter.name == "torch" else "flushed to zero"
        assert found["denormals"].startswith(expected) and "observed" in found["denormals"]


@pytest.mark.skipif(backends.selected_backend() != "torch", reason="flush-denormals is a PyTorch switch")
def test_flush_denormals_variant_makes_torch_flush():
    proc = run_python(
        "from bench import backends\n"
        "from bench.variants import runtime_switches\n"
        "backends.prepare_environment('cpu')\n"
        "adapter = backends.configure('cpu', 2, **runtime_switches('flush-denormals'))\n"
        "print(adapter.denormal_handling())\n"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().startswith("flushed to zero") and "set by kerasbench" in proc.stdout


def test_flush_denormals_variant_is_a_runtime_switch():
    from bench import variants

    assert variants.get_variant("flush-denormals") == {}  # no model change
    assert variants.runtime_switches("flush-denormals") == {"flush_denormals": True}
    assert variants.runtime_switches("jit") == {}


def test_device_facts_and_gpu_support_are_reported():
    adapter = backends.current()
    support = adapter.gpu_support()
    assert set(support) == {"cuda_build", "gpu_visible", "detail"} and support["detail"]
    assert not support["gpu_visible"] or support["cuda_build"]
    facts = adapter.device_facts()
    assert facts[adapter.name] == adapter.versions()[adapter.name]  # the library's own word on its version


def test_configure_returns_the_device_info():
    adapter = fresh_adapter()
    adapter._set_threads = lambda threads: None  # the device is the point here, not threads
    info = adapter.configure("auto", 1)
    assert isinstance(info, DeviceInfo) and info is adapter.device
    assert info.kind in ("cpu", "gpu") and info.name
    assert info.as_dict() == {"device": info.kind, "device_name": info.name}


def test_gpu_asked_for_on_a_cpu_only_machine_is_refused(monkeypatch):
    before = backends.current()
    if before.device.kind == "gpu":
        pytest.skip("this machine has a GPU")
    # TensorFlow refuses a new thread count once its runtime has started; the device check is the point.
    monkeypatch.setattr(type(before), "_set_threads", lambda self, threads: None)
    with pytest.raises(BackendError, match=f"the {before.name} backend sees no GPU on this machine") as refused:
        backends.configure("gpu", 1)
    if not before.gpu_support()["cuda_build"]:  # a CPU-only build: the message names the install command
        assert "make venv-gpu" in str(refused.value) and "constraints-gpu-tf.txt" in str(refused.value)
    assert backends.current() is before  # a failed configure leaves the adapter in use alone


def test_device_is_resolved_once(monkeypatch):
    adapter = fresh_adapter()
    calls = []
    original = adapter._gpu_name

    def counting() -> str | None:
        calls.append(1)
        return original()

    monkeypatch.setattr(adapter, "_gpu_name", counting)
    monkeypatch.setattr(adapter, "_set_threads", lambda threads: None)
    assert adapter.device == adapter.device
    for _ in range(2):
        adapter.memory_stats(adapter.reset_memory_stats())
        adapter.sync()
    adapter.configure("auto", 1)
    assert len(calls) == 1


def test_sync_after_to_device_gives_the_same_values():
    import keras

    adapter = backends.current()
    for array in (np.arange(12, dtype="float32").reshape(3, 4), np.array([[1, 5, 19999]], dtype="int32")):
        tensor = adapter.to_device(array)
        assert adapter.sync(tensor) is None
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(tensor), array)
    assert adapter.sync() is None


def test_memory_stats_report_the_host_keys():
    adapter = backends.current()
    baseline = adapter.reset_memory_stats()
    assert set(baseline) == {"rss", "peak_rss"} and all(v >= 0 for v in baseline.values())
    stats = adapter.memory_stats(baseline)
    assert set(stats) >= HOST_KEYS
    if adapter.device.kind == "cpu":
        assert set(stats) == HOST_KEYS
    assert stats["host_peak_rss_mib"] > 0


def test_versions_name_keras_and_the_backend():
    adapter = backends.current()
    found = adapter.versions()
    assert set(found) == {"keras", adapter.name} and all(found.values())


BRANCH_ON_NAME = re.compile(
    r"selected_backend\(\)\s*[!=]="
    r"|[!=]=\s*[\"'](?:torch|jax|tensorflow)[\"']"
    r"|[\"'](?:torch|jax|tensorflow)[\"']\s*[!=]="
)


def test_no_caller_branches_on_the_backend_name():
    # Only the adapters and the native references (framework-specific by design) may.
    allowed = (BENCH / "backends", BENCH / "native")
    offenders = []
    for path in sorted(BENCH.rglob("*.py")):
        if any(path == a or a in path.parents for a in allowed):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if BRANCH_ON_NAME.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "ask the adapter instead:\n" + "\n".join(offenders)


def test_loss_check_does_not_hold_the_training_loop(backend_name):
    # Keras dispatches batch-end callbacks to a thread pool when every callback is async-safe and the
    # backend is thread-safe (JAX, PyTorch); then the loop does not wait for each step's loss.
    # TensorFlow's callbacks run in the loop either way. A NaN still stops fit, naming epoch and step.
    import threading

    import keras

    from bench import training
    from bench.data import synthetic
    from model import build_model, initialize_weights

    model = build_model(max_features=20000, embed_dim=4, lstm_units=2)
    initialize_weights(model, 0)
    model.compile(optimizer="adam", loss=lambda y_true, y_pred: keras.ops.mean(keras.ops.log(y_pred - 2.0)))
    data = synthetic(64, 32, maxlen=10)
    check = training.loss_check(3)
    assert check.async_safe is True
    on_main_thread = []
    original = check.on_train_batch_end

    def watched(batch, logs=None):
        on_main_thread.append(threading.current_thread() is threading.main_thread())
        original(batch, logs)

    check.on_train_batch_end = watched
    model.fit(data.x_train, data.y_train.astype("float32"), batch_size=32, epochs=1, verbose=0, shuffle=False,
              callbacks=[check])
    assert on_main_thread and all(on_main_thread) == (backend_name == "tensorflow")
    with pytest.raises(training.NonFiniteLoss, match="at epoch 3, step 1"):
        check.raise_if_failed()


# TF32 switches read back from each backend, by default and under strict-fp32: (matmul, cuDNN LSTM).
DEFAULT_TF32 = {"tensorflow": (True, True), "jax": (True, True), "torch": (False, True)}


def test_strict_fp32_variant_turns_every_tf32_switch_off():
    found = json_from(
        "import json\n"
        "from bench import backends\n"
        "from bench.variants import runtime_switches\n"
        "backends.prepare_environment('cpu')\n"
        "adapter = backends.current()\n"
        "before = adapter._tf32_switches()[:2]\n"
        "adapter = backends.configure('cpu', 1, **runtime_switches('strict-fp32'))\n"
        "matmul, cudnn, how = adapter._tf32_switches()\n"
        "print(json.dumps({'before': before, 'after': [matmul, cudnn], 'how': how,\n"
        "                  'settings': adapter.runtime_settings()['float32_matmul']}, default=str))\n"
    )
    name = backends.selected_backend()
    assert tuple(found["before"]) == DEFAULT_TF32[name]  # the backends' defaults differ: why the variant exists
    assert found["after"] == [False, False] and found["how"]
    # On a CPU the record says fp32 whatever the switches: TF32 is an NVIDIA GPU mode.
    adapter = backends.current()
    precision = adapter.precision("float32", "loop")
    assert (precision.matmul, precision.rnn) == ("fp32", "fp32") and "CPU" in precision.how
