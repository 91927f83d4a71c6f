"""The GPU a run measures on, seen through NVML: what it is, its state around a run, who else uses it.

Observed or "unavailable: <why>", never estimated. NVML comes from nvidia-ml-py (the gpu extra);
without it, or without an NVIDIA driver, every fact says so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.fingerprint import mib

NVML_MISSING = "unavailable: nvidia-ml-py not installed (it is in the gpu extra: pip install nvidia-ml-py)"


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
        self.self_match = "not seen: the run had not used the GPU yet"  # how other_processes found this run
        self.run_pid: int | None = None  # this run's pid as NVML lists it, once other_processes found it
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
                "memory_used_mib": mib(memory.used) if hasattr(memory, "used") else memory,
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

    def other_processes(self, own_bytes: int | None = None) -> list[dict] | str:
        """Compute processes on this GPU other than this run: their pid, name and memory.

        This process is left out by its PID. In a container NVML lists host PIDs, which never match it: then
        (given ``own_bytes``, what the backend's allocator holds, which NVML's figure for this process is at least)
        the one entry that appeared since the watch started and uses at least that much is this run. Where none
        or several do, those entries say that this cannot be told (``this_run``), rather than blame another
        process or hide one. ``self_match`` says how this run was found.
        """
        if not self.available:
            return []
        found = self._ask("nvmlDeviceGetComputeRunningProcesses")
        if isinstance(found, str):
            return found
        own = os.getpid()
        entries = [{"pid": p.pid, "name": _process_name(p.pid), "used_mib": _mib_or_none(p),
                    "_bytes": getattr(p, "usedGpuMemory", None)} for p in found if p.pid != own]
        if len(entries) < len(found):
            self.self_match, self.run_pid = f"pid {own}: this process", own
        elif own_bytes is not None:
            self.self_match = self._match_by_memory(entries, own_bytes)
        for entry in entries:
            entry.pop("_bytes")
        return entries

    def _match_by_memory(self, entries: list[dict], own_bytes: int) -> str:
        """Find (and drop from ``entries``) this run where NVML's PIDs are not this process's (host PIDs)."""
        before = {p["pid"] for p in self.others_before} if isinstance(self.others_before, list) else set()
        unknown = not isinstance(self.others_before, list)
        could = [e for e in entries if (unknown or e["pid"] not in before)
                 and (not isinstance(e["_bytes"], int) or e["_bytes"] >= own_bytes)]
        if len(could) == 1 and isinstance(could[0]["_bytes"], int):
            entries.remove(could[0])
            self.run_pid = could[0]["pid"]
            return (f"NVML pid {could[0]['pid']}: not this process's pid {os.getpid()} (NVML lists host PIDs: a "
                    f"container?), but the one process new on the GPU since the run started with at least the "
                    f"{mib(own_bytes)} MiB its allocator holds")
        why = (f"cannot tell: NVML does not list this process's pid {os.getpid()} (host PIDs: a container?) and "
               f"{len(could)} entries appeared since the run started with at least the {mib(own_bytes)} MiB its "
               "allocator holds")
        for entry in could:
            entry["this_run"] = why
        return why


def others_sm_percent(watch: GpuWatch, since_us: int) -> tuple[float | None, str]:
    """Other processes' SM utilisation on the watched GPU since ``since_us`` (NVML's per-process samples,
    microseconds since the epoch): the sum over other processes of each one's mean, in percent, and how
    it was read. None where NVML cannot say, or cannot tell this run's samples from another's."""
    if not watch.available:
        return None, watch.unavailable or "unavailable: no GPU to watch"
    try:
        samples = watch.nv.nvmlDeviceGetProcessUtilization(watch.handle, since_us)
    except watch.nv.NVMLError as exc:
        if "not found" in str(exc).lower():  # no process ran a kernel in the window
            return 0.0, "NVML per-process utilisation: no samples in the window"
        return None, f"not reported (nvmlDeviceGetProcessUtilization: {exc})"
    pids = {s.pid for s in samples}
    own = os.getpid() if os.getpid() in pids else watch.run_pid
    if own is None and pids:
        return None, (f"cannot tell: NVML's samples name pids {sorted(pids)}, none of them this process's "
                      f"{os.getpid()} (host PIDs: a container?), and the run was not matched by memory")
    per_pid: dict[int, list[float]] = {}
    for sample in samples:
        if sample.pid != own:
            per_pid.setdefault(sample.pid, []).append(float(sample.smUtil))
    share = sum(sum(v) / len(v) for v in per_pid.values())
    return share, (f"NVML per-process SM utilisation over {len(samples)} samples: {len(per_pid)} other "
                   f"process(es); this run is pid {own}")


def _mib_or_none(proc: Any) -> float | None:
    used = getattr(proc, "usedGpuMemory", None)
    return mib(used) if isinstance(used, int) else None


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "not visible from this process (another container?)"


def other_processes_message(others: list[dict]) -> str:
    """One line naming the other processes on the GPU (they share it with the timed run)."""
    names = ", ".join(f"pid {p['pid']} ({p['name']}, {p['used_mib']} MiB"
                      + (f"; may be this run, {p['this_run']}" if p.get("this_run") else "") + ")" for p in others)
    return (f"{len(others)} other process(es) use the GPU this run measures on: {names}. Their work shares the GPU "
            "with the timed steps; stop them, or pass --strict-gpu to refuse such runs.")


def device_facts(adapter: Any, watch: GpuWatch | None, energy_source: str) -> dict:
    """The run block's ``device_facts``: what the backend and (on GPU) NVML say about the device.

    ``adapter`` is the run's backend adapter (``bench.backends``); ``watch`` the GpuWatch started
    before the backend touched the GPU (None on CPU); ``energy_source`` the run's energy counter
    (``bench.energy.energy_meter(...).source``), passed in since the energy meters build on this
    module. GPU state is sampled now as "after" and set beside the "before" sampled at the start.
    """
    facts: dict = {"device": adapter.device.kind, "backend": _safe(adapter.device_facts),
                   "float32_matmul": _safe(adapter.runtime_settings).get("float32_matmul"),
                   "energy": energy_source}
    if adapter.device.kind != "gpu":
        return facts
    if watch is None or not watch.available:
        facts["nvml"] = watch.unavailable if watch is not None else NVML_MISSING
        return facts
    after = watch.other_processes(_safe_value(lambda: adapter.device_memory_in_use()))
    facts |= {"gpu": watch.facts(), "before": watch.before, "after": watch.state(),
              "other_processes_before": watch.others_before, "other_processes_after": after,
              "this_run_in_nvml": watch.self_match}
    return facts


def _safe_value(fn: Any) -> Any:
    try:
        return fn()
    except Exception:  # an allocator that cannot say: NVML's list is then read by PID alone
        return None


def _safe(fn: Any) -> dict:
    try:
        return fn()
    except Exception as exc:  # a fact not observed is recorded as such, never a reason to stop a run
        return {"not observed": f"{type(exc).__name__}: {exc}"}
