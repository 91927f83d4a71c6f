"""The GPU watch: facts, state and other processes through NVML, and the run block's device facts.

NVML is replaced by a fake module (tests/fake_nvml.py): the GPU code paths run on any machine.
What this machine really offers is checked where it says "unavailable".
"""

import sys
from types import SimpleNamespace

import pytest

from bench import backends, energy, gpu
from tests.fake_nvml import fake_pynvml


def test_gpu_watch_reads_facts_state_and_other_processes(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    watch = gpu.GpuWatch(fake_pynvml(), None)
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
    assert "1 other process(es) use the GPU" in gpu.other_processes_message(watch.others_before)


def test_gpu_watch_follows_cuda_visible_devices(monkeypatch):
    nv = fake_pynvml()
    nv.nvmlDeviceGetHandleByUUID = lambda uuid: f"handle of {uuid}"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abcd,1")
    watch = gpu.GpuWatch(nv, None)
    assert watch.handle == "handle of GPU-abcd" and "CUDA_VISIBLE_DEVICES" in watch.which


def test_device_facts_on_a_gpu():
    watch = gpu.GpuWatch(fake_pynvml(), None)
    adapter = SimpleNamespace(device=backends.DeviceInfo("gpu", "NVIDIA H200"),
                              device_facts=lambda: {"cudnn": 91000},
                              runtime_settings=lambda: {"float32_matmul": {"allow_tf32": False}})
    facts = gpu.device_facts(adapter, watch, "NVML total energy consumption (test)")
    assert facts["backend"] == {"cudnn": 91000} and facts["float32_matmul"] == {"allow_tf32": False}
    assert facts["energy"] == "NVML total energy consumption (test)" and facts["gpu"]["driver"] == "580.65.06"
    assert set(facts["before"]) == set(facts["after"]) >= {"sm_clock_mhz", "temperature_c", "throttle_reasons"}
    assert facts["other_processes_before"][0]["pid"] == 999_999_999


def test_a_fact_the_backend_cannot_give_is_recorded_as_not_observed():
    def broken():
        raise RuntimeError("no cuDNN")

    adapter = SimpleNamespace(device=backends.DeviceInfo("gpu", "NVIDIA H200"), device_facts=broken,
                              runtime_settings=lambda: {})
    facts = gpu.device_facts(adapter, None, "unavailable: test")
    assert facts["backend"] == {"not observed": "RuntimeError: no cuDNN"} and facts["nvml"] == gpu.NVML_MISSING


def test_without_nvidia_ml_py_facts_say_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml now raises ImportError
    watch = gpu.GpuWatch()
    assert not watch.available and watch.unavailable == gpu.NVML_MISSING
    assert watch.state() == {"nvml": gpu.NVML_MISSING} and watch.other_processes() == []
    assert gpu.NVML_MISSING.startswith("unavailable: nvidia-ml-py not installed")


@pytest.mark.per_backend
def test_this_machines_facts_are_recorded_or_unavailable():
    adapter = backends.current()
    source = energy.energy_meter(adapter.device.kind).source
    facts = gpu.device_facts(adapter, None, source)
    assert facts["device"] == adapter.device.kind and facts["backend"] and facts["float32_matmul"]
    assert facts["energy"] == source


def _nvml_listing(*snapshots):
    """A fake NVML whose process list is each of ``snapshots`` in turn: (pid, bytes) pairs."""
    nv = fake_pynvml()
    lists = iter(snapshots)
    nv.nvmlDeviceGetComputeRunningProcesses = lambda h: [SimpleNamespace(pid=pid, usedGpuMemory=used)
                                                         for pid, used in next(lists)]
    return nv


def test_in_a_container_this_run_is_found_by_its_gpu_memory_not_listed_as_another():
    # NVML lists host PIDs: 4242 is this run (seen from the host), 777 was there before it started.
    watch = gpu.GpuWatch(_nvml_listing([(777, 2**29)], [(777, 2**29), (4242, 3 * 2**30)]), None)
    assert [p["pid"] for p in watch.others_before] == [777]
    after = watch.other_processes(own_bytes=2 * 2**30)
    assert [p["pid"] for p in after] == [777] and "this_run" not in after[0]
    assert watch.self_match.startswith("NVML pid 4242: not this process's pid") and "host PIDs" in watch.self_match


def test_where_memory_cannot_tell_which_entry_is_this_run_it_says_so():
    watch = gpu.GpuWatch(_nvml_listing([], [(4242, 3 * 2**30), (4343, 5 * 2**30), (99, 2**20)]), None)
    after = watch.other_processes(own_bytes=2 * 2**30)
    assert [p["pid"] for p in after] == [4242, 4343, 99]
    assert all(p["this_run"].startswith("cannot tell") for p in after[:2]) and "this_run" not in after[2]
    assert "may be this run, cannot tell" in gpu.other_processes_message(after)


def test_where_nvml_lists_this_process_it_is_left_out_by_its_pid():
    watch = gpu.GpuWatch(_nvml_listing([], [(sys.modules["os"].getpid(), 3 * 2**30), (4343, 2**30)]), None)
    assert [p["pid"] for p in watch.other_processes(own_bytes=2 * 2**30)] == [4343]
    assert watch.self_match.endswith("this process")
