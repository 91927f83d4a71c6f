"""Energy counters read around the timed rounds: NVML's on GPU, RAPL's on CPU.

A figure comes from a hardware counter or is "unavailable: <why>", never estimated. The counter
is read just before and just after the timed rounds (``bench.timing.measure_step``), never inside
a timed call.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bench.gpu import GpuWatch
from bench.results import Energy

RAPL_ROOT = Path("/sys/class/powercap")


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
