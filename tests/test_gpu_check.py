"""``python -m bench gpu-check`` (``make gpu-check``): the refusal without a GPU, and the run where one is seen.

Backends are probed through a stand-in, except where this machine's own backend is asked.
"""

import pytest

from bench import backends, cuda_libs
from bench.commands import gpu_check
from bench.fingerprint import NVIDIA_DRIVER_FILE
from tests.conftest import run_cli

CPU_ONLY = {
    "tensorflow": {"installed": True, "cuda_build": False, "gpu_visible": False, "detail": "tensorflow-cpu 2.21.0"},
    "jax": {"installed": True, "cuda_build": False, "gpu_visible": False, "detail": "jax without a CUDA plugin"},
    "torch": {"installed": False, "cuda_build": False, "gpu_visible": False, "detail": "not installed"},
}


def test_gpu_check_refuses_when_no_backend_sees_a_gpu():
    printed = []

    def never(*args, **kwargs):
        raise AssertionError("nothing may run without a GPU")

    assert gpu_check.gpu_check(probe=lambda backend, python: CPU_ONLY[backend], run=never, out=printed.append) == 2
    (paragraph,) = printed
    assert paragraph.startswith("kerasbench gpu-check: no GPU is visible to any installed backend")
    assert "torch: not installed" in paragraph and "jax: jax without a CUDA plugin" in paragraph
    assert "make venv-gpu" in paragraph and "constraints-gpu-tf.txt" in paragraph and "\n" not in paragraph


def test_gpu_check_runs_the_backends_that_see_a_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASBENCH_RESULTS", str(tmp_path))
    statuses = {**CPU_ONLY, "torch": {"installed": True, "cuda_build": True, "gpu_visible": True, "detail": "cu130"}}
    commands, printed = [], []
    checked = []
    code = gpu_check.gpu_check(pythons={"torch": "/gpu/.venv-gpu/bin/python"},
                               probe=lambda backend, python: statuses[backend],
                               check_libraries=lambda names, pythons: checked.append((names, pythons)) or [],
                               run=lambda command, **kw: commands.append(command) or 0, out=printed.append)
    assert code == 0
    assert checked == [(["torch"], {"torch": "/gpu/.venv-gpu/bin/python"})]  # CUDA builds' libraries, first
    (command,) = commands
    assert command[command.index("--device") + 1] == "gpu" and command[command.index("--backends") + 1] == "torch"
    assert "--python=torch=/gpu/.venv-gpu/bin/python" in command
    assert command[command.index("--profile") + 1] == "quick"
    assert any("tensorflow left out" in line for line in printed)
    assert "Kernels, energy and device facts" in printed[-1]


def test_gpu_check_refuses_a_cuda_build_on_the_other_majors_libraries():
    statuses = {**CPU_ONLY, "torch": {"installed": True, "cuda_build": True, "gpu_visible": True, "detail": "cu130"}}
    wrong = cuda_libs.Report("torch", "torch 2.13.0+cu130", 13, "import torch",
                             (cuda_libs.Library("cudnn", "/v/nvidia/cudnn/lib/libcudnn.so.9", 12, "test"),
                              cuda_libs.Library("nccl", "/v/nvidia/nccl/lib/libnccl.so.2", 13, "test")), {},
                             "/v/python")
    printed = []

    def never(*args, **kwargs):
        raise AssertionError("no benchmark may run on the wrong libraries")

    code = gpu_check.gpu_check(probe=lambda backend, python: statuses[backend],
                               check_libraries=lambda names, pythons: [wrong], run=never, out=printed.append)
    assert code == 2 and printed[-1].startswith("kerasbench cuda-libs: torch is built for CUDA 13 but loaded")


def test_a_cuda_build_without_a_gpu_shows_what_it_printed():
    status = {"installed": True, "cuda_build": True, "gpu_visible": False,
              "detail": "tensorflow 2.21.0 built with CUDA",
              "said": ["W0000 gpu_device.cc:2341] Cannot dlopen some GPU libraries."]}
    paragraph = gpu_check.gpu_refusal({"tensorflow": status})
    assert "but it sees no GPU (it said: W0000 gpu_device.cc:2341] Cannot dlopen some GPU libraries.)" in paragraph


@pytest.mark.per_backend
def test_this_backend_reports_whether_it_sees_a_gpu(backend_name):
    status = gpu_check.backend_gpu_status(backend_name)
    assert status["installed"] is True and status["detail"]
    if backends.current().device.kind == "cpu":
        assert status["gpu_visible"] is False


@pytest.mark.skipif(NVIDIA_DRIVER_FILE.exists(), reason="this machine has an NVIDIA driver: gpu-check would run")
def test_the_command_refuses_without_a_gpu_and_says_how_to_install():
    done = run_cli("gpu-check")
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout.startswith("kerasbench gpu-check: no GPU is visible to any installed backend")
    assert "make venv-gpu" in done.stdout and "constraints-gpu-tf.txt" in done.stdout
