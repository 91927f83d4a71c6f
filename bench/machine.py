"""Where a result was measured: the machine's fingerprint (and what it can tell of the device).

Sections: the fingerprint (issue 10); device facts, energy counters and `make gpu-check` (issue 11:
``GpuWatch``, ``device_facts``, ``energy_meter``, ``gpu_check``; run as ``python -m bench.machine gpu-check``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.backends import BACKENDS, GPU_INSTALL
from bench.backends.base import cpu_model
from bench.results import Energy
from bench.tables import MISSING

CHECKOUT = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------------------------------
# Fingerprint (issue 10): what makes two timings comparable, recorded in every result file's run block
# ----------------------------------------------------------------------------------------------------

# Timings from machines that differ in one of these are not comparable: compare refuses to gate.
MACHINE_KEYS = ("cpu_model", "usable_cores", "threads", "gpu")
# A change in one of these is often what is being measured: compare shows it on the line and gates.
VERSION_KEYS = ("os", "python", "gpu_driver", "backend_version", "keras")
LABELS = {"cpu_model": "CPU model", "usable_cores": "usable cores", "threads": "threads", "gpu": "GPU",
          "os": "OS", "python": "Python", "gpu_driver": "GPU driver", "backend_version": "backend",
          "keras": "Keras"}
NVIDIA_DRIVER_FILE = Path("/proc/driver/nvidia/version")


def fingerprint(*, backend: str, versions: dict, device: dict, threads: int) -> dict:
    """The machine and software a process measured on, as observed (never assumed).

    ``versions`` is the adapter's (``{"keras": ..., backend: ...}``), ``device`` its device
    (``{"device": "cpu"|"gpu", "device_name": ...}``), ``threads`` the thread count the run set.
    Usable cores are the CPUs this process may run on (``os.sched_getaffinity``), which a container
    or ``taskset`` can make fewer than the machine's; a value that cannot be observed says so.
    """
    gpu = device.get("device_name") if device.get("device") == "gpu" else None
    return {
        "cpu_model": cpu_model(),
        "usable_cores": usable_cores(),
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "gpu": gpu,
        "gpu_driver": gpu_driver() if gpu else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "backend": backend,
        "backend_version": versions.get(backend),
        "keras": versions.get("keras"),
    }


def usable_cores() -> int | str:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return f"not observed (no sched_getaffinity; {os.cpu_count()} logical CPUs)"


def gpu_driver() -> str:
    """The NVIDIA kernel driver's version, from the file the driver itself publishes."""
    try:
        text = NVIDIA_DRIVER_FILE.read_text()
    except OSError:
        return f"not observed (no {NVIDIA_DRIVER_FILE})"
    found = re.search(r"Kernel Module(?: for [\w-]+)?\s+([0-9][0-9.]*)", text)
    return found.group(1) if found else f"not observed (unrecognised {NVIDIA_DRIVER_FILE})"


def machine_key(print_: dict) -> str:
    """A short stable id of the machine part of a fingerprint (MACHINE_KEYS), e.g. for calibration files."""
    machine = {k: print_.get(k) for k in MACHINE_KEYS}
    return hashlib.sha256(json.dumps(machine, sort_keys=True).encode()).hexdigest()[:12]


def differences(before: dict, after: dict, keys: tuple[str, ...]) -> list[str]:
    """``["CPU model differs: A vs B", ...]`` for the ``keys`` where two fingerprints disagree."""
    return [f"{LABELS.get(k, k)} differs: {before.get(k)} vs {after.get(k)}" for k in keys
            if before.get(k) != after.get(k)]


def describe(print_: dict) -> str:
    """One line for people: 'AMD EPYC 7B13, 2 usable cores, 2 threads, no GPU'."""
    if not print_:
        return "machine not recorded"
    gpu = print_.get("gpu") or "no GPU"
    cores, threads = print_.get("usable_cores"), print_.get("threads")
    return f"{print_.get('cpu_model')}, {cores} usable cores, {threads} threads, {gpu}"


# ----------------------------------------------------------------------------------------------------
# Device facts and energy (issue 11): the GPU and its state around a run (NVML), energy counters
# (NVML on GPU, RAPL on CPU), and `make gpu-check`. Observed or "unavailable: <why>", never estimated.
# ----------------------------------------------------------------------------------------------------

NVML_MISSING = "unavailable: nvidia-ml-py not installed (it is in the gpu extra: pip install nvidia-ml-py)"
RAPL_ROOT = Path("/sys/class/powercap")
_MIB = 1 / 2**20


def nvml() -> tuple[Any, str | None]:
    """The ``pynvml`` module (nvidia-ml-py), initialised, or ``(None, "unavailable: <why>")``."""
    try:
        import pynvml
    except ImportError:
        return None, NVML_MISSING
    try:
        pynvml.nvmlInit()  # reference-counted by NVML: calling it again is cheap
    except pynvml.NVMLError as exc:
        return None, f"unavailable: NVML did not start ({exc}): no NVIDIA driver on this machine?"
    return pynvml, None


class GpuWatch:
    """The GPU a run uses, seen through NVML: what it is, its state, and who else uses it.

    Start it before the backend touches the GPU, so that the processes it lists are other people's.
    Which NVML device: the first entry of CUDA_VISIBLE_DEVICES (an index or a GPU-/MIG- UUID), else
    index 0. NVML numbers GPUs in PCI order; CUDA does too only with CUDA_DEVICE_ORDER=PCI_BUS_ID,
    which ``which`` says where several GPUs make it matter.
    """

    def __init__(self, nv: Any | None = None, unavailable: str | None = None) -> None:
        if nv is None and unavailable is None:
            nv, unavailable = nvml()
        self.nv, self.unavailable, self.handle, self.which = nv, unavailable, None, ""
        if nv is not None:
            try:
                self.handle, self.which = self._pick()
            except nv.NVMLError as exc:
                self.unavailable = f"unavailable: NVML found no GPU to watch ({exc})"
        self.before = self.state()
        self.others_before = self.other_processes()

    def _pick(self) -> tuple[Any, str]:
        nv = self.nv
        first = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
        if first.startswith(("GPU-", "MIG-")):
            return nv.nvmlDeviceGetHandleByUUID(first), f"UUID {first} (CUDA_VISIBLE_DEVICES)"
        index = int(first) if first.isdigit() else 0
        which = f"NVML index {index}" + (" (CUDA_VISIBLE_DEVICES)" if first.isdigit() else "")
        count = nv.nvmlDeviceGetCount()
        if count > 1 and os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
            which += f" of {count}: CUDA's numbering matches NVML's only with CUDA_DEVICE_ORDER=PCI_BUS_ID"
        return nv.nvmlDeviceGetHandleByIndex(index), which

    @property
    def available(self) -> bool:
        return self.handle is not None

    def _ask(self, fn: str, *args: Any, scale: float | None = None) -> Any:
        """``pynvml.fn(handle, *args)``, or "not reported (<why>)" where this GPU or driver does not say."""
        try:
            value = getattr(self.nv, fn)(self.handle, *args)
        except (self.nv.NVMLError, AttributeError) as exc:
            return f"not reported ({exc})"
        return round(value * scale, 3) if scale is not None else value

    def facts(self) -> dict:
        """What the GPU and its driver are (fixed for a run)."""
        if not self.available:
            return {"nvml": self.unavailable}
        nv = self.nv
        try:
            cuda = nv.nvmlSystemGetCudaDriverVersion_v2()
            cuda_driver = f"{cuda // 1000}.{cuda % 1000 // 10}"
        except nv.NVMLError as exc:
            cuda_driver = f"not reported ({exc})"
        return {"nvml_device": self.which, "name": self._ask("nvmlDeviceGetName"),
                "uuid": self._ask("nvmlDeviceGetUUID"), "driver": nv.nvmlSystemGetDriverVersion(),
                "cuda_driver_api": cuda_driver,
                "max_sm_clock_mhz": self._ask("nvmlDeviceGetMaxClockInfo", nv.NVML_CLOCK_SM),
                "max_memory_clock_mhz": self._ask("nvmlDeviceGetMaxClockInfo", nv.NVML_CLOCK_MEM),
                "power_limit_w": self._ask("nvmlDeviceGetPowerManagementLimit", scale=1e-3),
                "enforced_power_limit_w": self._ask("nvmlDeviceGetEnforcedPowerLimit", scale=1e-3),
                "persistence_mode": self._ask("nvmlDeviceGetPersistenceMode")}

    def state(self) -> dict:
        """Clocks, temperature, power and why clocks are held down, now."""
        if not self.available:
            return {"nvml": self.unavailable}
        nv = self.nv
        pstate = self._ask("nvmlDeviceGetPerformanceState")
        memory = self._ask("nvmlDeviceGetMemoryInfo")
        return {"sm_clock_mhz": self._ask("nvmlDeviceGetClockInfo", nv.NVML_CLOCK_SM),
                "memory_clock_mhz": self._ask("nvmlDeviceGetClockInfo", nv.NVML_CLOCK_MEM),
                "temperature_c": self._ask("nvmlDeviceGetTemperature", nv.NVML_TEMPERATURE_GPU),
                "power_draw_w": self._ask("nvmlDeviceGetPowerUsage", scale=1e-3),
                "performance_state": f"P{pstate}" if isinstance(pstate, int) else pstate,
                "memory_used_mib": round(memory.used * _MIB, 1) if hasattr(memory, "used") else memory,
                "throttle_reasons": self.throttle_reasons()}

    def throttle_reasons(self) -> list[str] | str:
        """The names NVML gives the reasons the clocks are below their maximum (an empty list: none)."""
        fn = ("nvmlDeviceGetCurrentClocksEventReasons" if hasattr(self.nv, "nvmlDeviceGetCurrentClocksEventReasons")
              else "nvmlDeviceGetCurrentClocksThrottleReasons")
        mask = self._ask(fn)
        if not isinstance(mask, int):
            return mask
        prefix = "nvmlClocksEventReason" if "Event" in fn else "nvmlClocksThrottleReason"
        # The library's own constants, so new reasons are named; aliases and the None/All masks skipped.
        bits = {name.removeprefix(prefix): value for name, value in vars(self.nv).items()
                if name.startswith(prefix) and isinstance(value, int) and value and value & (value - 1) == 0
                and name.removeprefix(prefix) != "UserDefinedClocks"}
        return sorted(name for name, bit in bits.items() if mask & bit)

    def other_processes(self) -> list[dict] | str:
        """Compute processes on this GPU other than this one: their pid, name and memory."""
        if not self.available:
            return []
        found = self._ask("nvmlDeviceGetComputeRunningProcesses")
        if isinstance(found, str):
            return found
        others = []
        for proc in found:
            if proc.pid == os.getpid():
                continue
            used = getattr(proc, "usedGpuMemory", None)
            others.append({"pid": proc.pid, "name": _process_name(proc.pid),
                           "used_mib": round(used * _MIB, 1) if isinstance(used, int) else None})
        return others


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "not visible from this process (another container?)"


def other_processes_message(others: list[dict]) -> str:
    """One line naming the other processes on the GPU (they share it with the timed run)."""
    names = ", ".join(f"pid {p['pid']} ({p['name']}, {p['used_mib']} MiB)" for p in others)
    return (f"{len(others)} other process(es) use the GPU this run measures on: {names}. Their work shares the GPU "
            "with the timed steps; stop them, or pass --strict-gpu to refuse such runs.")


def device_facts(adapter: Any, watch: GpuWatch | None) -> dict:
    """The run block's ``device_facts``: what the backend and (on GPU) NVML say about the device.

    ``adapter`` is the run's backend adapter (``bench.backends``); ``watch`` the GpuWatch started
    before the backend touched the GPU (None on CPU). GPU state is sampled now as "after" and
    set beside the "before" sampled at the start.
    """
    facts: dict = {"device": adapter.device.kind, "backend": _safe(adapter.device_facts),
                   "float32_matmul": _safe(adapter.runtime_settings).get("float32_matmul"),
                   "energy": energy_meter(adapter.device.kind).source}
    if adapter.device.kind != "gpu":
        return facts
    if watch is None or not watch.available:
        facts["nvml"] = watch.unavailable if watch is not None else NVML_MISSING
        return facts
    facts |= {"gpu": watch.facts(), "before": watch.before, "after": watch.state(),
              "other_processes_before": watch.others_before, "other_processes_after": watch.other_processes()}
    return facts


def _safe(fn: Any) -> dict:
    try:
        return fn()
    except Exception as exc:  # a fact not observed is recorded as such, never a reason to stop a run
        return {"not observed": f"{type(exc).__name__}: {exc}"}


# ------------------------------------------------------------------------------------------- energy

class EnergyMeter:
    """A hardware energy counter: ``read()`` before and after a span, ``joules(start, end)`` between them.

    ``source`` names the counter and what it covers, or says "unavailable: <why>" (then ``read``
    returns None and ``joules`` None).
    """

    source = "unavailable: no energy counter"

    def read(self) -> Any:
        return None

    def joules(self, start: Any, end: Any) -> float | None:
        return None


class Unavailable(EnergyMeter):
    def __init__(self, why: str) -> None:
        self.source = why if why.startswith("unavailable") else f"unavailable: {why}"


class NvmlEnergy(EnergyMeter):
    """NVML's total energy counter of the GPU board, in millijoules since the driver loaded (Volta and later)."""

    def __init__(self, watch: GpuWatch) -> None:
        self.watch = watch
        self.source = f"NVML total energy consumption (whole GPU board; {watch.which})"

    def read(self) -> int:
        return self.watch.nv.nvmlDeviceGetTotalEnergyConsumption(self.watch.handle)

    def joules(self, start: int | None, end: int | None) -> float | None:
        return None if start is None or end is None else (end - start) / 1e3


class RaplEnergy(EnergyMeter):
    """RAPL package counters (``energy_uj``, microjoules) summed over the CPU packages.

    A counter wraps to zero after ``max_energy_range_uj``; one wrap between two reads is undone.
    (More than one would need hours at full power between reads.) It covers the whole package:
    every process on it, not only this one.
    """

    def __init__(self, zones: list[Path], ranges: list[int], names: list[str]) -> None:
        self.zones, self.ranges = zones, ranges
        self.source = f"RAPL {' + '.join(names)} (whole CPU package, every process on it; {zones[0].parent})"

    def read(self) -> list[int]:
        return [int((zone / "energy_uj").read_text()) for zone in self.zones]

    def joules(self, start: list[int] | None, end: list[int] | None) -> float | None:
        if start is None or end is None:
            return None
        total = 0
        for before, after, wrap in zip(start, end, self.ranges, strict=True):
            total += after - before if after >= before else after + wrap - before
        return total / 1e6


def rapl_meter(root: Path = RAPL_ROOT) -> EnergyMeter:
    """The RAPL package counters under ``root`` (``intel-rapl:N``, also AMD's), or why there are none."""
    zones = sorted(p for p in root.glob("intel-rapl:*") if re.fullmatch(r"intel-rapl:\d+", p.name))
    packages, names, ranges = [], [], []
    for zone in zones:
        try:
            name = (zone / "name").read_text().strip()
        except OSError:
            continue
        if name.startswith("package"):  # psys (platform) and mmio zones would count the package again
            packages.append(zone)
            names.append(name)
    if not packages:
        return Unavailable(f"unavailable: no RAPL package counters ({root}/intel-rapl:N with a package-N name); "
                           "the CPU or a virtual machine does not expose them")
    try:
        for zone in packages:
            ranges.append(int((zone / "max_energy_range_uj").read_text()))
            int((zone / "energy_uj").read_text())
    except PermissionError:
        return Unavailable(f"unavailable: {packages[0]}/energy_uj is not readable by this user (root only since "
                           "Linux 5.10, CVE-2020-8694)")
    except (OSError, ValueError) as exc:
        return Unavailable(f"unavailable: RAPL counters unreadable ({exc})")
    return RaplEnergy(packages, ranges, names)


_METERS: dict[str, EnergyMeter] = {}


def energy_meter(device_kind: str) -> EnergyMeter:
    """The energy counter for a run on ``device_kind``: NVML's on GPU, RAPL's on CPU; found once per process."""
    if device_kind not in _METERS:
        if device_kind == "gpu":
            watch = GpuWatch()
            meter: EnergyMeter = Unavailable(watch.unavailable or "unavailable: no GPU")
            if watch.available:
                try:
                    watch.nv.nvmlDeviceGetTotalEnergyConsumption(watch.handle)
                    meter = NvmlEnergy(watch)
                except watch.nv.NVMLError as exc:
                    meter = Unavailable(f"unavailable: this GPU has no NVML energy counter ({exc}; Volta and later)")
        else:
            meter = rapl_meter()
        _METERS[device_kind] = meter
    return _METERS[device_kind]


def energy_per_step(meter: EnergyMeter, start: Any, end: Any, *, steps: int, batch_size: int) -> Energy:
    """StepMetrics' energy for ``steps`` steps between two reads of ``meter``."""
    joules = meter.joules(start, end)
    if joules is None or steps < 1:
        return Energy(meter.source)
    if joules <= 0:
        return Energy(f"unavailable: {meter.source} did not advance over the timed rounds ({joules} J)")
    per_step = joules / steps
    return Energy(meter.source, j_per_step=per_step, samples_per_joule=batch_size / per_step)


# ----------------------------------------------------------------------------------------- gpu-check

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
    """Whether ``backend`` is installed, built with CUDA, and sees a GPU: asked of it in its own process."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        proc = subprocess.run([python, "-c", _STATUS_CODE, backend], cwd=CHECKOUT, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"installed": True, "cuda_build": False, "gpu_visible": False,
                "detail": f"did not answer within {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"installed": True, "cuda_build": False, "gpu_visible": False, "detail": f"failed to start: {tail}"}
    return json.loads(lines[-1])


def gpu_refusal(statuses: dict[str, dict]) -> str:
    """The one paragraph `make gpu-check` prints when no installed backend sees a GPU."""
    def why(status: dict) -> str:
        if not status.get("installed"):
            return "not installed"
        if status.get("cuda_build"):
            return f"{status.get('detail')}, but it sees no GPU"
        return status.get("detail", "no CUDA build")

    found = "; ".join(f"{backend}: {why(status)}" for backend, status in statuses.items())
    return (f"kerasbench gpu-check: no GPU is visible to any installed backend ({found}). On a machine with an "
            f"NVIDIA GPU and its driver (nvidia-smi works), install the GPU set with {GPU_INSTALL}; then run "
            "`make gpu-check` again.")


def gpu_check(profile: str = "quick", *, probe: Callable[[str], dict] = backend_gpu_status,
              run: Callable[..., int] = subprocess.call, out: Callable[[str], None] = print) -> int:
    """`make gpu-check`: the ``profile`` with --device gpu for every backend that sees a GPU, then its facts.

    Returns the exit status: 2 (after one paragraph saying why and how to install) when no
    installed backend sees a GPU, else that of ``python -m bench run``.
    """
    statuses = {backend: probe(backend) for backend in BACKENDS}
    ready = [backend for backend, status in statuses.items() if status.get("gpu_visible")]
    if not ready:
        out(gpu_refusal(statuses))
        return 2
    for backend, status in statuses.items():
        if backend not in ready:
            out(f"kerasbench gpu-check: {backend} left out: {status.get('detail')}")
    from bench.settings import results_dir

    run_dir = results_dir() / "runs" / f"gpu-check-{time.strftime('%Y%m%dT%H%M%S')}"
    code = run([sys.executable, "-m", "bench", "run", "--profile", profile, "--device", "gpu",
                "--backends", ",".join(ready), "--run-dir", str(run_dir)], cwd=CHECKOUT)
    out(describe_gpu_run(run_dir))
    return code


def describe_gpu_run(run_dir: Path) -> str:
    """Kernels (spy and program), energy per step and the device facts of a run folder's results."""
    from bench import results

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.machine", description="Facts about this machine.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("gpu-check", help="run the quick profile with --device gpu on every backend that sees a GPU")
    check.add_argument("--profile", default="quick")
    args = parser.parse_args(argv)
    return gpu_check(args.profile)


if __name__ == "__main__":
    sys.exit(main())
