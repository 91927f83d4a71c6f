"""A stand-in for pynvml (nvidia-ml-py), so the NVML code paths run on any machine."""

import os
import types
from types import SimpleNamespace


class FakeNvmlError(Exception):
    pass


def fake_pynvml(energy_mj=(1000, 1000)):
    """A pynvml stand-in: one GPU, two processes (this one and another), clocks held by a power cap."""
    energy = iter(energy_mj)
    nv = types.ModuleType("pynvml")
    nv.NVMLError = FakeNvmlError
    nv.NVML_CLOCK_SM, nv.NVML_CLOCK_MEM, nv.NVML_TEMPERATURE_GPU = 1, 2, 0
    nv.nvmlClocksEventReasonGpuIdle = 0x1
    nv.nvmlClocksEventReasonSwPowerCap = 0x4
    nv.nvmlClocksEventReasonHwSlowdown = 0x8
    nv.nvmlClocksEventReasonNone = 0x0
    nv.nvmlClocksEventReasonAll = 0xF
    handle = object()
    nv.nvmlInit = lambda: None
    nv.nvmlDeviceGetCount = lambda: 1
    nv.nvmlDeviceGetHandleByIndex = lambda index: handle
    nv.nvmlSystemGetDriverVersion = lambda: "580.65.06"
    nv.nvmlSystemGetCudaDriverVersion_v2 = lambda: 13000
    nv.nvmlDeviceGetName = lambda h: "NVIDIA H200"
    nv.nvmlDeviceGetUUID = lambda h: "GPU-1234"
    nv.nvmlDeviceGetMaxClockInfo = lambda h, kind: {1: 1980, 2: 3201}[kind]
    nv.nvmlDeviceGetClockInfo = lambda h, kind: {1: 1755, 2: 3201}[kind]
    nv.nvmlDeviceGetPowerManagementLimit = lambda h: 700_000
    nv.nvmlDeviceGetEnforcedPowerLimit = lambda h: 700_000
    nv.nvmlDeviceGetPowerUsage = lambda h: 412_345
    nv.nvmlDeviceGetTemperature = lambda h, sensor: 47
    nv.nvmlDeviceGetPerformanceState = lambda h: 0
    nv.nvmlDeviceGetMemoryInfo = lambda h: SimpleNamespace(used=3 * 2**30)
    nv.nvmlDeviceGetCurrentClocksEventReasons = lambda h: 0x4 | 0x8

    def persistence(h):
        raise FakeNvmlError("Not Supported")

    nv.nvmlDeviceGetPersistenceMode = persistence
    nv.nvmlDeviceGetComputeRunningProcesses = lambda h: [SimpleNamespace(pid=os.getpid(), usedGpuMemory=2**30),
                                                         SimpleNamespace(pid=999_999_999, usedGpuMemory=2**29)]
    nv.nvmlDeviceGetTotalEnergyConsumption = lambda h: next(energy)
    return nv
