"""The backend adapters: one per backend, picked once; the device asked for once; the same results as before."""

import importlib
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

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
HOST_KEYS = {"host_rss_growth_mib", "host_peak_rss_mib"}


def fresh_adapter() -> backends.Adapter:
    """A new adapter of the selected backend, so that a test's changes stay away from ``current()``."""
    return type(backends.current())()


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


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


# How to read the thread count back; JAX (XLA:CPU) sizes its own pool and cannot be set after import.
THREADS_READBACK = {
    "torch": "import torch; threads = [torch.get_num_threads()]",
    "tensorflow": "import tensorflow as tf; threads = [tf.config.threading.get_intra_op_parallelism_threads(), "
                  "tf.config.threading.get_inter_op_parallelism_threads()]",
    "jax": "threads = None",
}


def test_configure_cpu_resolves_the_cpu_and_sets_threads():
    # A fresh process: TensorFlow refuses a new thread count once its runtime has started.
    name = backends.selected_backend()
    proc = run_python(
        "import json\n"
        "from bench import backends\n"
        "backends.prepare_environment('cpu')\n"
        "adapter = backends.configure('cpu', 1)\n"
        f"{THREADS_READBACK[name]}\n"
        "print(json.dumps({'name': adapter.name, 'device': adapter.device.as_dict(), 'threads': threads,\n"
        "                  'current': backends.current() is adapter}))\n"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["name"] == name and found["current"]
    assert found["device"]["device"] == "cpu" and found["device"]["device_name"]
    if name == "jax":
        assert found["threads"] is None  # nothing to read back: XLA:CPU picks its own thread pool
    else:
        assert set(found["threads"]) == {1}


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
    with pytest.raises(BackendError, match=f"the {before.name} backend sees no GPU on this machine"):
        backends.configure("gpu", 1)
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
