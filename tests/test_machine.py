"""Where a result was measured (issue 11's part of bench/machine.py): GPU facts through NVML, energy
counters (NVML, RAPL), `make gpu-check`'s refusal, and no NaN/Infinity tokens in the files written.

NVML is replaced by a fake module and RAPL by a fake sysfs folder: the GPU and RAPL code paths run
on any machine. What this machine really offers is checked where it says "unavailable".
"""

import dataclasses
import json
import math
import os
import sys
import time
import types
from types import SimpleNamespace

import numpy as np
import pytest

from bench import backends, compare, machine, report, results, timing
from tests.resultfiles import make_result, write_result

# ------------------------------------------------------------------------------------------- RAPL


def zone(root, name, label, energy_uj, max_uj=1_000_000):
    folder = root / name
    folder.mkdir()
    (folder / "name").write_text(f"{label}\n")
    (folder / "energy_uj").write_text(f"{energy_uj}\n")
    (folder / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return folder


def test_rapl_sums_the_packages_and_undoes_a_wrap(tmp_path):
    first = zone(tmp_path, "intel-rapl:0", "package-0", 990_000)
    zone(tmp_path, "intel-rapl:0:0", "core", 5)  # a part of package 0: counting it would count twice
    second = zone(tmp_path, "intel-rapl:1", "package-1", 100_000)
    zone(tmp_path, "intel-rapl:2", "psys", 7)  # the platform: includes the packages
    zone(tmp_path, "intel-rapl-mmio:0", "package-0", 11)  # the same package through MMIO
    meter = machine.rapl_meter(tmp_path)
    assert meter.source.startswith("RAPL package-0 + package-1 (whole CPU package")
    start = meter.read()
    (first / "energy_uj").write_text("40000\n")  # wrapped past max_energy_range_uj (1 J) to 0.04 J
    (second / "energy_uj").write_text("350000\n")
    end = meter.read()
    assert meter.joules(start, end) == pytest.approx((1_000_000 - 990_000 + 40_000 + 250_000) / 1e6)
    found = machine.energy_per_step(meter, start, end, steps=10, batch_size=32)
    assert found.j_per_step == pytest.approx(0.03)
    assert found.samples_per_joule == pytest.approx(32 / 0.03)
    assert found.source == meter.source


def test_rapl_without_packages_or_readable_counters_says_why(tmp_path):
    assert machine.rapl_meter(tmp_path / "missing").source.startswith("unavailable: no RAPL package counters")
    folder = zone(tmp_path, "intel-rapl:0", "package-0", 1)
    (folder / "energy_uj").unlink()
    (folder / "energy_uj").mkdir()  # unreadable as a file (root reads any file, so no chmod here)
    meter = machine.rapl_meter(tmp_path)
    assert meter.source.startswith("unavailable: RAPL counters unreadable")
    assert machine.energy_per_step(meter, meter.read(), meter.read(), steps=3, batch_size=8) == results.Energy(
        source=meter.source, j_per_step=None, samples_per_joule=None)


def test_a_counter_that_did_not_advance_gives_no_figure(tmp_path):
    zone(tmp_path, "intel-rapl:0", "package-0", 500)
    meter = machine.rapl_meter(tmp_path)
    found = machine.energy_per_step(meter, meter.read(), meter.read(), steps=5, batch_size=8)
    assert found.j_per_step is None and found.source.startswith("unavailable: RAPL")


@pytest.mark.skipif(any(machine.RAPL_ROOT.glob("intel-rapl:*")), reason="this machine exposes RAPL")
def test_energy_is_unavailable_on_this_machine():
    meter = machine.energy_meter("cpu")
    assert meter.source.startswith("unavailable: ") and meter.read() is None
    assert machine.energy_per_step(meter, None, None, steps=3, batch_size=8).j_per_step is None


class SteppingMeter(machine.EnergyMeter):
    """Counts reads and notes whether a timed step was running during one."""

    source = "test counter"

    def __init__(self):
        self.reads, self.inside = 0, False

    def read(self):
        assert not self.inside, "the energy counter was read inside a timed call"
        self.reads += 1
        return self.reads * 6.0

    def joules(self, start, end):
        return end - start


class FakeBenchmark:
    """pytest-benchmark's fixture as measure_step uses it: pedantic rounds into stats.stats.data."""

    def __init__(self):
        self.stats = SimpleNamespace(stats=SimpleNamespace(data=[], median=None), options={"timer": time.perf_counter})

    def pedantic(self, fn, rounds, warmup_rounds, iterations):
        for _ in range(rounds):
            start = time.perf_counter()
            fn()
            self.stats.stats.data.append(time.perf_counter() - start)
        self.stats.stats.median = float(np.median(self.stats.stats.data))


def test_measure_step_reads_the_counter_around_the_timed_rounds_only(monkeypatch):
    meter = SteppingMeter()
    monkeypatch.setattr(machine, "energy_meter", lambda kind: meter)

    def step():
        meter.inside = True
        time.sleep(0.001)
        meter.inside = False

    metrics = timing.measure_step(FakeBenchmark(), step, rounds=4, warmup_rounds=1, batch_size=16, staged_batches=1)
    assert meter.reads == 2  # once before the timed rounds, once after
    assert metrics.energy.j_per_step == pytest.approx(6.0 / 4) and metrics.energy.source == "test counter"
    assert metrics.energy.samples_per_joule == pytest.approx(16 / 1.5)


# ------------------------------------------------------------------------------------------- NVML

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


def test_gpu_watch_reads_facts_state_and_other_processes(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    watch = machine.GpuWatch(fake_pynvml(), None)
    assert watch.available and watch.which == "NVML index 0"
    facts = watch.facts()
    assert facts["driver"] == "580.65.06" and facts["cuda_driver_api"] == "13.0" and facts["name"] == "NVIDIA H200"
    assert facts["power_limit_w"] == 700.0 and facts["max_sm_clock_mhz"] == 1980
    assert facts["persistence_mode"] == "not reported (Not Supported)"  # a GPU that does not say, says so
    assert watch.before["throttle_reasons"] == ["HwSlowdown", "SwPowerCap"]
    assert watch.before["power_draw_w"] == pytest.approx(412.345) and watch.before["memory_used_mib"] == 3072.0
    assert watch.before["performance_state"] == "P0" and watch.before["temperature_c"] == 47
    # This process is not "another" one; the other is named, with its memory.
    assert watch.others_before == [{"pid": 999_999_999, "used_mib": 512.0,
                                    "name": "not visible from this process (another container?)"}]
    assert "1 other process(es) use the GPU" in machine.other_processes_message(watch.others_before)


def test_gpu_watch_follows_cuda_visible_devices(monkeypatch):
    nv = fake_pynvml()
    nv.nvmlDeviceGetHandleByUUID = lambda uuid: f"handle of {uuid}"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abcd,1")
    watch = machine.GpuWatch(nv, None)
    assert watch.handle == "handle of GPU-abcd" and "CUDA_VISIBLE_DEVICES" in watch.which


def test_nvml_energy_and_device_facts_on_a_gpu(monkeypatch):
    watch = machine.GpuWatch(fake_pynvml(energy_mj=(10_000, 10_000, 25_000)), None)
    meter = machine.NvmlEnergy(watch)
    meter.read()  # the availability probe of energy_meter
    start, end = meter.read(), meter.read()
    assert meter.joules(start, end) == 15.0 and meter.source.startswith("NVML total energy consumption")
    monkeypatch.setitem(machine._METERS, "gpu", meter)
    adapter = SimpleNamespace(device=backends.DeviceInfo("gpu", "NVIDIA H200"),
                              device_facts=lambda: {"cudnn": 91000},
                              runtime_settings=lambda: {"float32_matmul": {"allow_tf32": False}})
    facts = machine.device_facts(adapter, watch)
    assert facts["backend"] == {"cudnn": 91000} and facts["float32_matmul"] == {"allow_tf32": False}
    assert facts["energy"] == meter.source and facts["gpu"]["driver"] == "580.65.06"
    assert set(facts["before"]) == set(facts["after"]) >= {"sm_clock_mhz", "temperature_c", "throttle_reasons"}
    assert facts["other_processes_before"][0]["pid"] == 999_999_999


def test_without_nvidia_ml_py_facts_say_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml now raises ImportError
    watch = machine.GpuWatch()
    assert not watch.available and watch.unavailable == machine.NVML_MISSING
    assert watch.state() == {"nvml": machine.NVML_MISSING} and watch.other_processes() == []
    assert machine.NVML_MISSING.startswith("unavailable: nvidia-ml-py not installed")


@pytest.mark.per_backend
def test_this_machines_facts_are_recorded_or_unavailable():
    adapter = backends.current()
    facts = machine.device_facts(adapter, None)
    assert facts["device"] == adapter.device.kind and facts["backend"] and facts["float32_matmul"]
    assert facts["energy"] == machine.energy_meter(adapter.device.kind).source


# -------------------------------------------------------------------------------------- gpu-check

CPU_ONLY = {
    "tensorflow": {"installed": True, "cuda_build": False, "gpu_visible": False, "detail": "tensorflow-cpu 2.21.0"},
    "jax": {"installed": True, "cuda_build": False, "gpu_visible": False, "detail": "jax without a CUDA plugin"},
    "torch": {"installed": False, "cuda_build": False, "gpu_visible": False, "detail": "not installed"},
}


def test_gpu_check_refuses_when_no_backend_sees_a_gpu():
    printed = []

    def never(*args, **kwargs):
        raise AssertionError("nothing may run without a GPU")

    assert machine.gpu_check(probe=CPU_ONLY.get, run=never, out=printed.append) == 2
    (paragraph,) = printed
    assert paragraph.startswith("kerasbench gpu-check: no GPU is visible to any installed backend")
    assert "torch: not installed" in paragraph and "jax: jax without a CUDA plugin" in paragraph
    assert "make venv-gpu" in paragraph and "constraints-gpu.txt" in paragraph and "\n" not in paragraph


def test_gpu_check_runs_the_backends_that_see_a_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASBENCH_RESULTS", str(tmp_path))
    statuses = {**CPU_ONLY, "torch": {"installed": True, "cuda_build": True, "gpu_visible": True, "detail": "cu130"}}
    commands, printed = [], []
    code = machine.gpu_check(probe=statuses.get, run=lambda command, **kw: commands.append(command) or 0,
                             out=printed.append)
    assert code == 0
    (command,) = commands
    assert command[command.index("--device") + 1] == "gpu" and command[command.index("--backends") + 1] == "torch"
    assert command[command.index("--profile") + 1] == "quick"
    assert any("tensorflow left out" in line for line in printed)
    assert "Kernels, energy and device facts" in printed[-1]


@pytest.mark.per_backend
def test_this_backend_reports_whether_it_sees_a_gpu(backend_name):
    status = machine.backend_gpu_status(backend_name)
    assert status["installed"] is True and status["detail"]
    if backends.current().device.kind == "cpu":
        assert status["gpu_visible"] is False


# ----------------------------------------------------------------------------- files without NaN

def strict_json(text):
    def refuse(token):
        raise AssertionError(f"{token} token in a written JSON file")

    return json.loads(text, parse_constant=refuse)


def test_exports_write_null_not_nan(tmp_path):
    write_result(tmp_path, make_result("jax"))
    runs, _ = results.load([tmp_path])
    nan = float("nan")
    broken = []
    for r in results.results_of(runs):  # as if a benchmark had measured NaN and Infinity
        stats = dataclasses.replace(r.stats, stddev=nan, iqr=math.inf)
        metrics = (dataclasses.replace(r.record.metrics, harness_vs_plain=nan, samples_per_s=-math.inf)
                   if r.step else r.record.metrics)
        broken.append(dataclasses.replace(r, stats=stats, record=dataclasses.replace(r.record, metrics=metrics)))
    written = [compare.write_bencher(broken, tmp_path / "bencher.json"),
               *compare.write_github_action_benchmark(broken, tmp_path / "action")]
    report.write_report(broken, fmt_name="json", output=tmp_path / "report.json")
    report.write_report(broken, fmt_name="csv", output=tmp_path / "report.csv")
    for path in [*written, tmp_path / "report.json"]:
        strict_json(path.read_text())
    strict_json(report.render(broken, "json"))  # printed JSON too: it is redirected into files
    csv_text = (tmp_path / "report.csv").read_text()
    assert not {"nan", "inf", "-inf", "NaN", "Infinity"} & set(csv_text.replace("\n", ",").split(","))


@pytest.mark.parametrize(("args", "strict"), [([], False), (["--strict-gpu"], True), (["--strict-gpu", "yes"], True),
                                              (["--strict-gpu", "no"], False)])
def test_strict_gpu_option(args, strict):
    import argparse

    from bench import settings

    parser = argparse.ArgumentParser()
    for flag, kwargs in settings.OPTIONS:
        parser.add_argument(flag, **kwargs)
    parsed = parser.parse_args(args)
    assert settings.from_options(lambda dest: getattr(parsed, dest)).strict_gpu is strict
