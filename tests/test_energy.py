"""Energy counters: RAPL's package counters (a fake sysfs folder), NVML's board counter (a fake NVML), the
figure per step, and the counter read around the timed rounds only.

What this machine really offers is checked where it says "unavailable".
"""

import time
from types import SimpleNamespace

import numpy as np
import pytest

from bench import energy, gpu, results, timing
from tests.fake_nvml import fake_pynvml


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
    meter = energy.rapl_meter(tmp_path)
    assert meter.source.startswith("RAPL package-0 + package-1 (whole CPU package")
    start = meter.read()
    (first / "energy_uj").write_text("40000\n")  # wrapped past max_energy_range_uj (1 J) to 0.04 J
    (second / "energy_uj").write_text("350000\n")
    end = meter.read()
    assert meter.joules(start, end) == pytest.approx((1_000_000 - 990_000 + 40_000 + 250_000) / 1e6)
    found = energy.energy_per_step(meter, start, end, steps=10, batch_size=32)
    assert found.j_per_step == pytest.approx(0.03)
    assert found.samples_per_joule == pytest.approx(32 / 0.03)
    assert found.source == meter.source


def test_rapl_without_packages_or_readable_counters_says_why(tmp_path):
    assert energy.rapl_meter(tmp_path / "missing").source.startswith("unavailable: no RAPL package counters")
    folder = zone(tmp_path, "intel-rapl:0", "package-0", 1)
    (folder / "energy_uj").unlink()
    (folder / "energy_uj").mkdir()  # unreadable as a file (root reads any file, so no chmod here)
    meter = energy.rapl_meter(tmp_path)
    assert meter.source.startswith("unavailable: RAPL counters unreadable")
    assert energy.energy_per_step(meter, meter.read(), meter.read(), steps=3, batch_size=8) == results.Energy(
        source=meter.source, j_per_step=None, samples_per_joule=None)


def test_a_counter_that_did_not_advance_gives_no_figure(tmp_path):
    zone(tmp_path, "intel-rapl:0", "package-0", 500)
    meter = energy.rapl_meter(tmp_path)
    found = energy.energy_per_step(meter, meter.read(), meter.read(), steps=5, batch_size=8)
    assert found.j_per_step is None and found.source.startswith("unavailable: RAPL")


@pytest.mark.skipif(any(energy.RAPL_ROOT.glob("intel-rapl:*")), reason="this machine exposes RAPL")
def test_energy_is_unavailable_on_this_machine():
    meter = energy.energy_meter("cpu")
    assert meter.source.startswith("unavailable: ") and meter.read() is None
    assert energy.energy_per_step(meter, None, None, steps=3, batch_size=8).j_per_step is None


class SteppingMeter(energy.EnergyMeter):
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
    monkeypatch.setattr(energy, "energy_meter", lambda kind: meter)

    def step():
        meter.inside = True
        time.sleep(0.001)
        meter.inside = False

    metrics = timing.measure_step(FakeBenchmark(), step, rounds=4, warmup_rounds=1, batch_size=16, staged_batches=1)
    assert meter.reads == 2  # once before the timed rounds, once after
    assert metrics.energy.j_per_step == pytest.approx(6.0 / 4) and metrics.energy.source == "test counter"
    assert metrics.energy.samples_per_joule == pytest.approx(16 / 1.5)


def test_nvml_energy_counts_the_board_between_two_reads():
    watch = gpu.GpuWatch(fake_pynvml(energy_mj=(10_000, 25_000)), None)
    meter = energy.NvmlEnergy(watch)
    start, end = meter.read(), meter.read()
    assert meter.joules(start, end) == 15.0 and meter.source.startswith("NVML total energy consumption")
    assert "NVML index 0" in meter.source and meter.joules(None, end) is None
    found = energy.energy_per_step(meter, start, end, steps=5, batch_size=32)
    assert found == results.Energy(meter.source, j_per_step=3.0, samples_per_joule=pytest.approx(32 / 3.0))


def test_without_a_gpu_counter_the_gpu_meter_says_why(monkeypatch):
    monkeypatch.setattr(energy, "_METERS", {})
    monkeypatch.setattr(energy, "GpuWatch", lambda: gpu.GpuWatch(None, gpu.NVML_MISSING))
    assert energy.energy_meter("gpu").source == gpu.NVML_MISSING
