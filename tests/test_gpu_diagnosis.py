"""A broken GPU install is diagnosed, not blamed on the driver: --device gpu tells JAX to use CUDA, keeps
TensorFlow's loader warnings, and the refusal carries what the backend raised, logged and printed.

The adapter's base class runs here with a stand-in ``_gpu_name``; the JAX adapter with JAX's device lists replaced.
"""

import logging
import os
from types import SimpleNamespace

from bench import backends
from bench.backends import DeviceInfo, base
from bench.backends import jax as jax_backend


def test_device_gpu_tells_jax_to_use_cuda_and_keeps_tensorflows_warnings(monkeypatch):
    monkeypatch.setattr(backends, "keep_out", lambda names, backend: None)  # not this test's business
    for name in ("JAX_PLATFORMS", "TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    backends.prepare_environment("gpu")
    assert os.environ["JAX_PLATFORMS"] == "cuda,cpu" and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    monkeypatch.delenv("JAX_PLATFORMS")
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    backends.prepare_environment("auto")  # auto may fall back to the CPU: JAX chooses
    assert "JAX_PLATFORMS" not in os.environ and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"


def test_what_a_library_writes_to_file_descriptor_2_is_kept_and_passed_on(capfd):
    said: list[str] = []
    with base.stderr_kept(said):
        os.write(2, b"W0000 00:00:1 gpu_device.cc:2341] Cannot dlopen some GPU libraries.\n\n")
    assert said == ["W0000 00:00:1 gpu_device.cc:2341] Cannot dlopen some GPU libraries."]
    assert "Cannot dlopen some GPU libraries" in capfd.readouterr().err


class _CudaBuild(base.Adapter):
    name = "tensorflow"

    def gpu_support(self) -> dict:
        return {"cuda_build": True, "gpu_visible": False, "detail": "tensorflow 2.21.0 built with CUDA"}

    def _gpu_name(self) -> str | None:
        os.write(2, b"W0000 gpu_device.cc:2341] Cannot dlopen some GPU libraries.\n")
        raise RuntimeError("Unable to initialize backend 'cuda'")


def test_the_refusal_names_what_the_backend_raised_and_printed_before_the_driver():
    adapter = _CudaBuild()
    assert adapter.device.kind == "cpu"
    message = adapter._no_gpu_message()
    assert "Its error: RuntimeError: Unable to initialize backend 'cuda'." in message
    assert "It printed: W0000 gpu_device.cc:2341] Cannot dlopen some GPU libraries." in message
    assert message.index("python -m bench cuda-libs") < message.index("nvidia-smi")


def _device(platform: str, stats: dict | None) -> SimpleNamespace:
    def memory_stats() -> dict | None:
        if stats is None:
            raise RuntimeError("this device belongs to another process")
        return stats

    return SimpleNamespace(platform=platform, device_kind="NVIDIA H200", memory_stats=memory_stats)


def test_jax_reads_memory_and_gpus_of_this_ranks_own_devices(monkeypatch):
    # Under --processes, jax.devices()[0] on rank 1 is rank 0's GPU: only jax.local_devices() is this rank's.
    mine = _device("gpu", {"peak_bytes_in_use": 123, "pool_bytes": 456})
    monkeypatch.setattr(jax_backend.jax, "devices", lambda *a: [_device("gpu", None), mine])
    monkeypatch.setattr(jax_backend.jax, "local_devices", lambda *a: [mine])
    adapter = jax_backend.JaxAdapter()
    assert adapter._gpu_name() == "NVIDIA H200" and adapter.gpu_count() == 1
    adapter._device = DeviceInfo("gpu", "NVIDIA H200")
    assert adapter._device_peak() == 123 and adapter.device_memory_in_use() == 456


def test_jax_keeps_why_its_cuda_plugin_did_not_start(monkeypatch):
    def failing(*args):
        try:
            raise RuntimeError("operation cuInit(0) failed: JAX was unable to load the CUDA libraries")
        except RuntimeError:
            logging.getLogger("jax._src.xla_bridge").exception("Jax plugin configuration error: Exception when "
                                                                "calling jax_plugins.xla_cuda13.initialize()")
        raise RuntimeError("Unable to initialize backend 'cuda': Unknown backend cuda")

    monkeypatch.setattr(jax_backend.jax, "local_devices", failing)
    adapter = jax_backend.JaxAdapter()
    assert adapter.device.kind == "cpu"
    assert adapter._gpu_error == ("Jax plugin configuration error: Exception when calling "
                                  "jax_plugins.xla_cuda13.initialize(): RuntimeError: operation cuInit(0) failed: "
                                  "JAX was unable to load the CUDA libraries; RuntimeError: Unable to initialize "
                                  "backend 'cuda': Unknown backend cuda")
