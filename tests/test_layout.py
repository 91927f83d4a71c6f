"""Layouts (bench/distributed/layout.py): names and batches, the options that carry them, ranks, GPU counts."""

from __future__ import annotations

import pytest

from bench.backends import BackendError
from bench.distributed import launcher
from bench.distributed.layout import (
    ADDRESSES_ENV,
    RANK_ENV,
    WORLD_ENV,
    Layout,
    check_gpu_count,
    layout_name,
    rank_from_env,
)
from bench.settings import from_options
from tests.conftest import run_python

OPTIONS = {"profile": "quick", "variant": "default", "dataset": "synthetic", "device": "cpu", "seed": None,
           "seeds": None, "rounds": "profile"}


def test_layout_names_and_batches():
    assert Layout().suffix == "" and not Layout().distributed
    assert Layout(devices=4).suffix == "-dp4" and Layout(processes=2).suffix == "-mp2"
    assert Layout(devices=1).distributed  # N = 1 through the engine: its own overhead
    assert Layout(devices=4, scaling="strong").suffix == "-dp4-strong"
    assert Layout(devices=4).batches(32) == (32, 128)  # weak: the per-replica batch is kept
    assert Layout(processes=4, scaling="strong").batches(32) == (8, 32)  # strong: the global one
    with pytest.raises(ValueError, match="divisible by 3"):
        Layout(processes=3, scaling="strong").batches(32)


def test_one_spelling_of_a_layout_name_for_ids_and_reports():
    assert layout_name("devices", 4) == "dp4" and layout_name("processes", 2) == "mp2"
    for layout in (Layout(devices=3), Layout(processes=5, scaling="strong")):
        assert layout.suffix.startswith(f"-{layout_name(layout.mode, layout.replicas)}")


@pytest.mark.parametrize(("extra", "message"), [
    ({"devices": 2, "processes": 2}, "not both"),
    ({"devices": 2, "variant": "spe8"}, "steps_per_execution"),
    ({"processes": 3, "scaling": "strong"}, "divisible by 3"),
])
def test_options_refuse_what_no_engine_can_run(extra, message):
    with pytest.raises(ValueError, match=message):
        from_options({**OPTIONS, **extra}.get)


def test_options_carry_the_layout():
    settings = from_options({**OPTIONS, "processes": 2, "scaling": "strong"}.get)
    assert settings.layout == Layout(processes=2, scaling="strong")
    assert settings.describe()["layout"] == {"devices": None, "processes": 2, "scaling": "strong"}


def test_rank_comes_from_the_launcher_or_torchrun():
    assert rank_from_env({}) is None
    info = rank_from_env(launcher.rank_env(1, 2, ["127.0.0.1:5000", "127.0.0.1:5001"]))
    assert (info.rank, info.world, info.coordinator, info.source) == (1, 2, "127.0.0.1:5000", "kerasbench")
    torchrun = rank_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "h0",
                              "MASTER_PORT": "29500"})
    assert (torchrun.rank, torchrun.local_rank, torchrun.coordinator, torchrun.source) == (3, 1, "h0:29500",
                                                                                          "torchrun")
    with pytest.raises(BackendError, match="not a valid process"):
        rank_from_env({RANK_ENV: "2", WORLD_ENV: "2", ADDRESSES_ENV: "a:1"})
    with pytest.raises(BackendError, match="malformed"):
        rank_from_env({RANK_ENV: "one", WORLD_ENV: "2", ADDRESSES_ENV: "a:1"})


def test_more_gpus_than_present_fail_clearly():
    with pytest.raises(BackendError, match=r"--devices 4 asks for 4 GPUs, but the jax backend sees 2.*--device cpu"):
        check_gpu_count(4, 2, backend="jax", flag="--devices")
    check_gpu_count(2, 2, backend="jax", flag="--devices")


def test_layout_imports_no_framework_and_nothing_of_timing():
    # bench.settings imports it: it must not pull in timing, machine or settings (an import cycle), nor a framework.
    unwanted = ("bench.timing", "bench.machine", "bench.distributed.engine", "jax", "tensorflow", "torch", "keras")
    proc = run_python("-c", "import sys, bench.distributed.layout, bench.settings\n"
                            f"print(sorted(m for m in {unwanted!r} if m in sys.modules))")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
