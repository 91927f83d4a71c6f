"""Where a result was measured: the fingerprint, the CPU model, the usable CPUs, and what compare reads of them."""

import os
import platform

import pytest

from bench import fingerprint


def test_fingerprint_records_the_machine_as_observed():
    found = fingerprint.fingerprint(backend="jax", versions={"jax": "0.10.2", "keras": "3.15.1"},
                                    device={"device": "cpu", "device_name": "Some CPU"}, threads=2)
    assert found["usable_cores"] == len(os.sched_getaffinity(0)) and found["logical_cpus"] == os.cpu_count()
    assert found["gpu"] is None and found["gpu_driver"] is None and found["threads"] == 2
    assert (found["backend"], found["backend_version"], found["keras"]) == ("jax", "0.10.2", "3.15.1")
    assert found["cpu_model"] and found["python"].count(".") == 2
    key = fingerprint.machine_key
    assert key(found) == key({**found, "keras": "9.9"})  # versions are not machines
    assert key(found) != key({**found, "usable_cores": 64})


@pytest.mark.parametrize(("text", "version"), [
    ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n", "535.104.05"),
    ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build\n", "550.54.15"),
    ("something else\n", None),
])
def test_gpu_driver_from_the_driver_file(tmp_path, monkeypatch, text, version):
    (tmp_path / "version").write_text(text)
    monkeypatch.setattr(fingerprint, "NVIDIA_DRIVER_FILE", tmp_path / "version")
    found = fingerprint.fingerprint(backend="torch", versions={"torch": "2.13.0", "keras": "3.15.1"},
                                    device={"device": "gpu", "device_name": "NVIDIA H200"}, threads=2)
    assert found["gpu"] == "NVIDIA H200"
    assert found["gpu_driver"] == version if version else found["gpu_driver"].startswith("not observed")


def test_differences_name_what_differs():
    a = {"cpu_model": "A", "usable_cores": 2, "threads": 2, "gpu": None}
    assert fingerprint.differences(a, {**a, "cpu_model": "B"}, fingerprint.MACHINE_KEYS) == [
        "CPU model differs: A vs B"]
    assert fingerprint.differences(a, a, fingerprint.MACHINE_KEYS) == []


def test_describe_is_one_line_for_people():
    print_ = {"cpu_model": "AMD EPYC 7B13", "usable_cores": 2, "threads": 2, "gpu": None}
    assert fingerprint.describe(print_) == "AMD EPYC 7B13, 2 usable cores, 2 threads, no GPU"
    assert fingerprint.describe({**print_, "gpu": "NVIDIA H200"}).endswith(", NVIDIA H200")
    assert fingerprint.describe({}) == "machine not recorded"


def test_differences_count_a_key_one_side_lacks_as_unknown():
    old = {"cpu_model": "AMD EPYC", "usable_cores": 2, "threads": 1, "gpu": None}  # written before cpu_id
    new = {**old, "cpu_id": "family 26 model 2 stepping 1"}
    assert fingerprint.differences(old, new, fingerprint.MACHINE_KEYS) == [
        "CPU family/model differs: not recorded vs family 26 model 2 stepping 1"]
    assert fingerprint.differences(new, {**new, "cpu_id": "family 25 model 1 stepping 1"}, ("cpu_id",)) == [
        "CPU family/model differs: family 26 model 2 stepping 1 vs family 25 model 1 stepping 1"]


def test_two_cpus_with_one_generic_name_are_told_apart(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    block = "processor\t: {n}\nvendor_id\t: AuthenticAMD\ncpu family\t: {f}\nmodel\t\t: {m}\nmodel name\t: AMD EPYC\n" \
            "stepping\t: 1\n\n"
    cpuinfo.write_text(block.format(n=0, f=26, m=2) + block.format(n=1, f=99, m=9))
    monkeypatch.setattr(fingerprint, "CPUINFO", cpuinfo)
    assert fingerprint.cpu_model() == "AMD EPYC" and fingerprint.cpu_id() == "family 26 model 2 stepping 1"
    zen5 = fingerprint.fingerprint(backend="jax", versions={}, device={"device": "cpu"}, threads=1)
    cpuinfo.write_text(block.format(n=0, f=25, m=1))
    zen3 = fingerprint.fingerprint(backend="jax", versions={}, device={"device": "cpu"}, threads=1)
    assert fingerprint.machine_key(zen5) != fingerprint.machine_key(zen3)
    assert fingerprint.describe(zen5).startswith("AMD EPYC (family 26 model 2 stepping 1), ")
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Neoverse\n")  # no family: said so, and describe leaves it out
    neoverse = {"cpu_model": "Neoverse", "cpu_id": fingerprint.cpu_id(), "usable_cores": 2, "threads": 1}
    assert neoverse["cpu_id"].startswith("not observed") and fingerprint.describe(neoverse).startswith("Neoverse, ")
    monkeypatch.setattr(fingerprint, "CPUINFO", tmp_path / "missing")
    assert fingerprint.cpu_id() == f"not observed (no {tmp_path / 'missing'})"


def test_cpu_model_reads_cpuinfo_and_falls_back_to_the_platform(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n")
    monkeypatch.setattr(fingerprint, "CPUINFO", cpuinfo)
    assert fingerprint.cpu_model() == "AMD EPYC 7B13"
    monkeypatch.setattr(fingerprint, "CPUINFO", tmp_path / "missing")
    assert fingerprint.cpu_model() == (platform.processor() or platform.machine())


def test_usable_cpus_are_this_processes_affinity_else_the_machines_count(monkeypatch):
    assert fingerprint.usable_cpus() == len(os.sched_getaffinity(0))
    monkeypatch.setattr(fingerprint, "AFFINITY_OBSERVED", False)  # as on an OS without sched_getaffinity
    assert fingerprint.usable_cpus() == (os.cpu_count() or 1)
    found = fingerprint.fingerprint(backend="jax", versions={}, device={"device": "cpu"}, threads=1)
    assert found["usable_cores"].startswith("not observed (no sched_getaffinity")


@pytest.mark.parametrize(("n_bytes", "mib"), [(0, 0.0), (2**20, 1.0), (3 * 2**30, 3072.0), (1536 * 2**10, 1.5),
                                              (2**20 + 2**15, 1.0)])
def test_mib_rounds_to_a_tenth(n_bytes, mib):
    assert fingerprint.mib(n_bytes) == mib
