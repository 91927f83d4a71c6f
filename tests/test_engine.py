"""The data-parallel engines (bench/distributed/engine.py and each framework's module), on every backend.

The engine tests start backend processes: the tiny model of tests/distributed_worker.py on N = 2
simulated CPU devices (one process) and on 2 processes, and the smallest real ``pytest bench/
--processes 2`` run, whose rank 1 is killed mid-run. Each is bounded in time and every process it
started is gone when it ends.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench import backends, results
from bench.backends import BackendError
from bench.distributed import launcher
from bench.distributed.engine import DataParallel, Engine, engine_for
from bench.distributed.layout import RANK_ENV, Layout, RankInfo
from tests.conftest import ROOT, run_python

# Data-parallel float32 sums the gradient in another order than one device does: measured 1.5e-8 to 6e-8
# after 3 Adam steps (lr 1e-3, weights moved by about 3e-3), on every backend, for N = 2 and 4.
TOLERANCE = 1e-5
WORKER = ROOT / "tests" / "distributed_worker.py"
NAN_MESSAGE = "training loss became nan at epoch 1, step 3"  # the worker plants its NaN at step 3
TINY_RUN = ["--profile", "smoke", "--dataset", "synthetic", "--train-samples", "64", "--test-samples", "64",
            "--maxlen", "10", "--batch-size", "8", "--device", "cpu"]
DISTRIBUTED = ROOT / "bench" / "distributed"
FRAMEWORK_IMPORT = re.compile(r"^\s*(?:import|from)\s+(jax|tensorflow|torch)\b", re.MULTILINE)


def alive(pid: int) -> bool:
    """Whether ``pid`` exists, even as a zombie (a launcher must reap what it started)."""
    return Path(f"/proc/{pid}").exists()


# ------------------------------------------------------------------------------ the front and the lookup

def test_only_each_frameworks_module_imports_it():
    # The front (engine.py), layout.py and launcher.py import no framework; jax.py only JAX, and so on.
    for path in sorted(DISTRIBUTED.glob("*.py")):
        imported = set(FRAMEWORK_IMPORT.findall(path.read_text()))
        assert imported <= ({path.stem} & {"jax", "tensorflow", "torch"}), (path.name, imported)
        names = {alias.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom)
                 for alias in node.names}
        assert "engine_for" not in names, f"{path.name} must not reach the front's lookup"


def test_importing_the_front_imports_no_framework():
    proc = run_python("-c", "import sys, bench.distributed.engine, bench.distributed.launcher\n"
                            "print(sorted(m for m in ('jax', 'tensorflow', 'torch', 'keras') if m in sys.modules))")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


@pytest.mark.per_backend
def test_the_adapter_names_its_engine_and_its_native_reference():
    adapter = backends.current()
    one_device = engine_for(adapter, Layout(), None)
    assert type(one_device) is Engine and not one_device.distributed and one_device.global_batch(32) == 32
    rank = RankInfo(1, 2, 1, ("127.0.0.1:1", "127.0.0.1:2"))
    engine = engine_for(adapter, Layout(processes=2, scaling="strong"), rank)  # built, not started
    assert isinstance(engine, DataParallel) and type(engine).__module__ == adapter.distributed_module
    assert (engine.global_batch(32), engine.local_rows(32), engine.lockstep) == (32, slice(16, 32), True)
    if adapter.native_module is None:
        with pytest.raises(NotImplementedError, match="no native reference"):
            backends.implementation(adapter, "native")
    else:
        assert backends.implementation(adapter, "native").__name__ == adapter.native_module


@pytest.mark.per_backend
def test_processes_need_their_rank():
    with pytest.raises(BackendError, match="--processes 2 runs through `pytest bench/ --processes 2`"):
        engine_for(backends.current(), Layout(processes=2), None)


# ---------------------------------------- every backend: same weights as one device, and the same first NaN

def check_worker_output(found: dict, layout: str) -> None:
    assert found[layout]["max_weight_change"] > 100 * TOLERANCE  # the steps did train
    assert found[layout]["max_weight_diff"] < TOLERANCE, found
    assert found[layout]["max_rank_spread"] == 0.0, found  # every rank holds the same weights
    # A NaN planted at step 3 stops the data-parallel epoch there, with the single-device message.
    assert found["nan"] == {"single": NAN_MESSAGE, "parallel": NAN_MESSAGE}, found["nan"]


@pytest.mark.per_backend
def test_devices_train_like_one_device_and_stop_at_the_same_nan(tmp_path):
    adapter = backends.current()
    if not adapter.supports_devices:
        engine = engine_for(adapter, Layout(devices=2), None)
        with pytest.raises(BackendError, match=r"^--devices: .*Use --processes N"):  # refused before the backend starts
            engine.before_start(adapter)
        return
    out = tmp_path / "devices.json"
    proc = run_python(WORKER, out, "devices", "2", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_worker_output(json.loads(out.read_text()), "dp2")


@pytest.mark.per_backend
def test_processes_train_like_one_device_and_stop_at_the_same_nan(tmp_path):
    out = tmp_path / "processes.json"
    pids: list[int] = []

    def watchdog(procs: list[subprocess.Popen]) -> None:
        # Bounded: a rank stuck in a collective is killed, and the launcher then stops and reaps the other.
        pids.extend(p.pid for p in procs)
        timer = threading.Timer(300, lambda: [p.kill() for p in procs if p.poll() is None])
        timer.daemon = True
        timer.start()

    launcher.launch([sys.executable, str(WORKER), str(out), "processes"], 2, log_dir=tmp_path / "logs",
                    split_cpus=True, grace_s=2.0, on_start=watchdog)
    assert len(pids) == 2 and not any(alive(pid) for pid in pids)
    found = json.loads(out.read_text())
    check_worker_output(found, "mp2")
    # TensorFlow's multi-worker step is our own only because Keras 3.15's fails under the strategy.
    own_step = found["mp2"]["engine"] == "tf.distribute.MultiWorkerMirroredStrategy"
    assert ("keras_train_function" in found) == own_step
    if own_step:
        assert found["keras_train_function"].startswith("fails: ValueError"), (
            "Keras's own train_function now runs under MultiWorkerMirroredStrategy: use it in "
            "TensorFlowDataParallel instead of model.train_step under strategy.run")


def test_two_processes_train_like_one_device_and_a_killed_rank_fails_the_run(tmp_path):
    # One real `pytest bench/ --processes 2` (under JAX in `make test`: launching, stopping and saving do not
    # depend on the backend; each engine's steps and NaN are the worker test's, per backend): train_step first
    # (its record holds every rank's times and the check against one device), then accuracy for many epochs,
    # during which rank 1 is killed.
    command = [sys.executable, "-m", "pytest", "bench/test_train_step.py", "bench/test_accuracy.py", "-q",
               "--processes", "2", *TINY_RUN, "--epochs", "500", "--results-dir", str(tmp_path)]
    run = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ranks: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 300
        while not list(tmp_path.glob("*.json")) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        ranks = _ranks_of(run.pid)
        assert list(tmp_path.glob("*.json")) and set(ranks) == {0, 1}, "the run did not get to its second benchmark"
        os.kill(ranks[1], signal.SIGKILL)
        output, _ = run.communicate(timeout=60)  # bounded: rank 0 is stopped within the 5 s grace
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
        for pid in ranks.values():  # only if the launcher failed at its job
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert run.returncode == 1, output[-3000:]
    assert "rank 1 of 2 ended with exit code -9 (killed by SIGKILL)" in output
    assert not any(alive(pid) for pid in ranks.values()), "a rank outlived the run"
    [result] = results.load([tmp_path])[0]  # rank 0's file: whole, the finished benchmark kept
    # Rank 0 either gets the launcher's SIGTERM first (an unfinished run) or its next collective fails
    # on the dead peer and pytest ends with a failed benchmark (exit 1): never a clean finish.
    assert not result.info.finished or result.info.exitstatus not in (0, None)
    [step] = [r for r in result.results if r.kind == "train_step"]
    assert step.name.endswith("-mp2]") and step.simulated and step.layout.processes == 2
    assert len(step.step.scaling.rank_step_s) == 2 and step.step.scaling.efficiency > 0
    assert step.step.equivalence.ranks_agree and step.step.equivalence.max_weight_diff_vs_one_device < TOLERANCE
    assert step.layout.keras_train_function is None  # no throwaway model in a real run: the test above checks


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _ranks_of(parent: int) -> dict[int, int]:
    """rank -> pid of the launcher's children, from /proc (their KERASBENCH_RANK)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _parent(int(entry.name)) == parent:
            try:
                env = dict(item.split("=", 1) for item in (entry / "environ").read_bytes().decode().split("\0")
                           if "=" in item)
            except OSError:
                continue
            if RANK_ENV in env:
                found[int(env[RANK_ENV])] = int(entry.name)
    return found
