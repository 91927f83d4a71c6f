"""``python -m bench gpu-check``: the quick profile with --device gpu on every backend that sees a GPU.

Each backend is asked, in its own process (with its ``--python`` interpreter), whether it is installed, built
with CUDA and sees a GPU; every CUDA build is first checked to load its own CUDA major's cuDNN and NCCL
(``python -m bench cuda-libs``). Where one does not, or none sees a GPU, the command refuses (exit 2) in one
paragraph saying how to install the GPU set;
otherwise it runs ``python -m bench run --device gpu`` on those that do, then prints the kernels,
energy per step and device facts their result files record. ``make gpu-check`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bench import cuda_libs, results
from bench.backends import BACKENDS, GPU_INSTALL
from bench.commands import cuda_libs as cuda_libs_command
from bench.commands.options import add_python_option, pythons_of
from bench.settings import CHECKOUT, results_dir
from bench.tables import MISSING


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gpu-check", help="run the quick profile with --device gpu on every backend that sees a GPU",
                       description="Run a profile with --device gpu on every installed backend that sees a GPU, "
                                   "then show the LSTM kernels, energy per step and device facts of the run. "
                                   "Exit 2, saying how to install the GPU set, where no backend sees a GPU.")
    p.add_argument("--profile", default="quick", help="the benchmark profile to run (default: quick)")
    add_python_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return gpu_check(args.profile, pythons=pythons_of(args))


_STATUS_CODE = """
import json, sys
from bench import backends
try:
    backends.check_backend(sys.argv[1])
except backends.BackendError as exc:
    print(json.dumps({"installed": False, "cuda_build": False, "gpu_visible": False, "detail": str(exc)}))
    sys.exit(0)
print(json.dumps({"installed": True, **backends.current().gpu_support()}))
"""


def backend_gpu_status(backend: str, python: str = sys.executable, timeout: float = 300) -> dict:
    """Whether ``backend`` is installed, built with CUDA, and sees a GPU: asked of it in its own process.

    A CUDA build that sees no GPU also gets what it printed meanwhile (``said``: TensorFlow's "Cannot dlopen some
    GPU libraries", JAX's failed plugin), whole: that, not the driver, is often why.
    """
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "1"}  # 1: TF's loader warnings stay
    try:
        proc = subprocess.run([python, "-c", _STATUS_CODE, backend], cwd=CHECKOUT, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"installed": True, "cuda_build": False, "gpu_visible": False,
                "detail": f"did not answer within {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    said = [line.strip() for line in proc.stderr.splitlines() if _TELLING.search(line)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"installed": True, "cuda_build": False, "gpu_visible": False, "detail": f"failed to start: {tail}",
                "said": said}
    status = json.loads(lines[-1])
    if status.get("cuda_build") and not status.get("gpu_visible") and said:
        status["said"] = said
    return status


# Lines of a backend's stderr worth showing: absl/glog warnings and errors (W0000 ..., E0000 ...), exceptions.
_TELLING = re.compile(r"^[WEF]\d{4} |Error|error:|Cannot dlopen|Could not load")


def gpu_refusal(statuses: dict[str, dict]) -> str:
    """The one paragraph `make gpu-check` prints when no installed backend sees a GPU."""
    def why(status: dict) -> str:
        if not status.get("installed"):
            return "not installed"
        if status.get("cuda_build"):
            said = " | ".join(status.get("said") or [])
            return f"{status.get('detail')}, but it sees no GPU" + (f" (it said: {said})" if said else "")
        return status.get("detail", "no CUDA build")

    found = "; ".join(f"{backend}: {why(status)}" for backend, status in statuses.items())
    return (f"kerasbench gpu-check: no GPU is visible to any installed backend ({found}). On a machine with an "
            f"NVIDIA GPU and its driver (nvidia-smi works), install the GPU set with {GPU_INSTALL}; then run "
            "`make gpu-check` again.")


def gpu_check(profile: str = "quick", *, pythons: Mapping[str, str] | None = None,
              probe: Callable[[str, str], dict] = backend_gpu_status,
              check_libraries: Callable[[Sequence[str], Mapping[str, str]], list] = cuda_libs_command.check,
              run: Callable[..., int] = subprocess.call, out: Callable[[str], None] = print) -> int:
    """`make gpu-check`: the ``profile`` with --device gpu for every backend that sees a GPU, then its facts.

    ``pythons`` gives a backend its own interpreter (the GPU set's venvs). Returns the exit status: 2 (after one
    paragraph saying why and how to install) when no installed backend sees a GPU or a CUDA build loads
    another CUDA major's cuDNN or NCCL (``python -m bench cuda-libs``), else that of ``python -m bench run``.
    """
    pythons = dict(pythons or {})
    statuses = {backend: probe(backend, pythons.get(backend, sys.executable)) for backend in BACKENDS}
    built = [backend for backend, status in statuses.items() if status.get("cuda_build")]
    reports = check_libraries(built, pythons) if built else []
    refused = cuda_libs.refusal(reports, GPU_INSTALL)
    if refused:
        out(cuda_libs.render(reports))
        out(refused)
        return 2
    ready = [backend for backend, status in statuses.items() if status.get("gpu_visible")]
    if not ready:
        out(gpu_refusal(statuses))
        return 2
    for backend, status in statuses.items():
        if backend not in ready:
            out(f"kerasbench gpu-check: {backend} left out: {status.get('detail')}")
    run_dir = results_dir() / "runs" / f"gpu-check-{time.strftime('%Y%m%dT%H%M%S')}"
    own = [f"--python={backend}={python}" for backend, python in pythons.items() if backend in ready]
    code = run([sys.executable, "-m", "bench", "run", "--profile", profile, "--device", "gpu",
                "--backends", ",".join(ready), "--run-dir", str(run_dir), *own], cwd=CHECKOUT)
    out(describe_gpu_run(run_dir))
    return code


def describe_gpu_run(run_dir: Path) -> str:
    """Kernels (spy and program), energy per step and the device facts of a run folder's results."""
    runs, _ = results.load([run_dir])
    out = ["", "## Kernels, energy and device facts", ""]
    for run in runs:
        facts = run.info.device_facts
        gpu, before, after = facts.get("gpu", {}), facts.get("before", {}), facts.get("after", {})
        backend = facts.get("backend", {})
        out.append(f"### {run.info.backend} on {run.info.device_name}")
        out.append(f"- driver {gpu.get('driver')}, CUDA driver API {gpu.get('cuda_driver_api')}; backend: "
                   + ", ".join(f"{k} {v}" for k, v in backend.items()))
        out.append(f"- float32 matmul: {facts.get('float32_matmul')}")
        for when, state in (("before", before), ("after", after)):
            out.append(f"- {when}: SM {state.get('sm_clock_mhz')} MHz, {state.get('temperature_c')} °C, "
                       f"{state.get('power_draw_w')} W of {gpu.get('power_limit_w')} W, "
                       f"throttle reasons {state.get('throttle_reasons')}")
        others = facts.get("other_processes_before") or facts.get("other_processes_after")
        out.append(f"- other processes on the GPU: {others or 'none'}")
        for r in run.results:
            c, step = r.context, r.step
            energy = (f"{step.energy.j_per_step:.4g} J/step, {step.energy.samples_per_joule:.4g} samples/J"
                      if step and step.energy.j_per_step is not None else "no energy figure")
            source = step.energy.source if step else ""
            median = MISSING if r.median_ms is None else f"{r.median_ms:.3g} ms"
            out.append(f"- {r.name}: {median}; LSTM kernel {c.kernel.name!r}, program {c.kernel.observed!r}, "
                       f"check {c.kernel.check}; {energy} ({source})")
        out.append("")
    return "\n".join(out)
