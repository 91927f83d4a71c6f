"""Where a result was measured: the machine's fingerprint, recorded in every result file's run block.

Also the one reader of the CPU's model name, the one count of the CPUs this process may use, and the
MiB conversion every memory figure uses. This module imports nothing else of kerasbench: the
adapters (bench/backends/), the GPU watch and the settings build on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from pathlib import Path

# Timings from machines that differ in one of these are not comparable: compare refuses to gate.
# cpu_id too, since a cloud VM's model name can be generic: two hosts that both said only "AMD EPYC" ran this
# project's steps 1.6-3.3 times apart (the faster one family 26, with AVX-512 VP2INTERSECT).
MACHINE_KEYS = ("cpu_model", "cpu_id", "usable_cores", "threads", "gpu")
# A change in one of these is often what is being measured: compare shows it on the line and gates.
VERSION_KEYS = ("os", "python", "gpu_driver", "backend_version", "keras")
LABELS = {"cpu_model": "CPU model", "cpu_id": "CPU family/model", "usable_cores": "usable cores",
          "threads": "threads", "gpu": "GPU",
          "os": "OS", "python": "Python", "gpu_driver": "GPU driver", "backend_version": "backend",
          "keras": "Keras"}
NVIDIA_DRIVER_FILE = Path("/proc/driver/nvidia/version")
CPUINFO = Path("/proc/cpuinfo")
# Only Linux says which CPUs a process may run on; elsewhere the machine's count stands in for it.
AFFINITY_OBSERVED = hasattr(os, "sched_getaffinity")


def fingerprint(*, backend: str, versions: dict, device: dict, threads: int) -> dict:
    """The machine and software a process measured on, as observed (never assumed).

    ``versions`` is the adapter's (``{"keras": ..., backend: ...}``), ``device`` its device
    (``{"device": "cpu"|"gpu", "device_name": ...}``), ``threads`` the thread count the run set.
    Usable cores are the CPUs this process may run on (``usable_cpus``), which a container or
    ``taskset`` can make fewer than the machine's; a value that cannot be observed says so.
    """
    gpu = device.get("device_name") if device.get("device") == "gpu" else None
    return {
        "cpu_model": cpu_model(),
        "cpu_id": cpu_id(),
        "usable_cores": (usable_cpus() if AFFINITY_OBSERVED
                         else f"not observed (no sched_getaffinity; {os.cpu_count()} logical CPUs)"),
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


def _first_cpu() -> dict[str, str] | None:
    """The first processor's fields in /proc/cpuinfo ('model name', 'cpu family', ...); None without the file."""
    fields: dict[str, str] = {}
    try:
        with open(CPUINFO) as fh:
            for line in fh:
                if not line.strip() and fields:
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return None
    return fields


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo; where there is none, what the platform module says."""
    return (_first_cpu() or {}).get("model name") or platform.processor() or platform.machine()


def cpu_id() -> str:
    """The CPU's family, model and stepping from /proc/cpuinfo (x86), e.g. 'family 26 model 2 stepping 1';
    'not observed' where the file does not give them."""
    found = _first_cpu()
    if found is None:
        return f"not observed (no {CPUINFO})"
    if "cpu family" not in found or "model" not in found:
        return f"not observed (no cpu family and model in {CPUINFO})"
    return f"family {found['cpu family']} model {found['model']} stepping {found.get('stepping', '?')}"


def usable_cpus() -> int:
    """The CPUs this process may use (its affinity: taskset, cgroups cpusets), not the machine's count.

    Where the OS does not say (no ``sched_getaffinity``: not Linux), the machine's logical CPUs.
    """
    if AFFINITY_OBSERVED:
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def gpu_driver() -> str:
    """The NVIDIA kernel driver's version, from the file the driver itself publishes."""
    try:
        text = NVIDIA_DRIVER_FILE.read_text()
    except OSError:
        return f"not observed (no {NVIDIA_DRIVER_FILE})"
    found = re.search(r"Kernel Module(?: for [\w-]+)?\s+([0-9][0-9.]*)", text)
    return found.group(1) if found else f"not observed (unrecognised {NVIDIA_DRIVER_FILE})"


def mib(n_bytes: float) -> float:
    """Bytes as MiB, to 0.1 MiB: how every memory figure in the result files is written."""
    return round(n_bytes / 2**20, 1)


def machine_key(print_: dict) -> str:
    """A short stable id of the machine part of a fingerprint (MACHINE_KEYS), e.g. for calibration files."""
    machine = {k: print_.get(k) for k in MACHINE_KEYS}
    return hashlib.sha256(json.dumps(machine, sort_keys=True).encode()).hexdigest()[:12]


def differences(before: dict, after: dict, keys: tuple[str, ...]) -> list[str]:
    """``["CPU model differs: A vs B", ...]`` for the ``keys`` where two fingerprints disagree.

    A key one file does not record (written before it was) reads "not recorded": not known to be the same.
    """
    return [f"{LABELS.get(k, k)} differs: {before.get(k, 'not recorded')} vs {after.get(k, 'not recorded')}"
            for k in keys if before.get(k) != after.get(k)]


def describe(print_: dict) -> str:
    """One line for people: 'AMD EPYC 7B13, 2 usable cores, 2 threads, no GPU'."""
    if not print_:
        return "machine not recorded"
    gpu = print_.get("gpu") or "no GPU"
    cores, threads = print_.get("usable_cores"), print_.get("threads")
    cpu = print_.get("cpu_model")
    if print_.get("cpu_id") and not str(print_["cpu_id"]).startswith("not observed"):
        cpu = f"{cpu} ({print_['cpu_id']})"
    return f"{cpu}, {cores} usable cores, {threads} threads, {gpu}"
