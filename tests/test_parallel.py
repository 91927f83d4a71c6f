"""Data-parallel layouts (bench/parallel.py): names and batches, the launcher, records, reports, compare,
and on every backend the same weights as one device.

The tests that start backends use the tiny model of tests/parallel_worker.py or the smallest benchmark
run, N = 2 simulated CPU devices, and start backend processes once per backend (two ranks of a real
run, one of them killed mid-run). Every launched process is stopped in a ``finally``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import backends, compare, parallel, plots, report, results
from bench.backends import BackendError
from bench.settings import from_options
from tests.conftest import ROOT, run_python
from tests.resultfiles import make_result, write_result

# Data-parallel float32 sums the gradient in another order than one device does: measured 1.5e-8 to 6e-8
# after 3 Adam steps (lr 1e-3, weights moved by about 3e-3), on every backend, for N = 2 and 4.
TOLERANCE = 1e-5
TINY_RUN = ["--profile", "smoke", "--dataset", "synthetic", "--train-samples", "64", "--test-samples", "64",
            "--maxlen", "10", "--batch-size", "8", "--device", "cpu"]
OPTIONS = {"profile": "quick", "variant": "default", "dataset": "synthetic", "device": "cpu", "seed": None,
           "seeds": None, "rounds": "profile"}


# ------------------------------------------------------------------------------------ layouts, options

def test_layout_names_and_batches():
    assert parallel.Layout().suffix == "" and not parallel.Layout().distributed
    assert parallel.Layout(devices=4).suffix == "-dp4" and parallel.Layout(processes=2).suffix == "-mp2"
    assert parallel.Layout(devices=1).distributed  # N = 1 through the engine: its own overhead
    assert parallel.Layout(devices=4, scaling="strong").suffix == "-dp4-strong"
    assert parallel.Layout(devices=4).batches(32) == (32, 128)  # weak: the per-replica batch is kept
    assert parallel.Layout(processes=4, scaling="strong").batches(32) == (8, 32)  # strong: the global one
    with pytest.raises(ValueError, match="divisible by 3"):
        parallel.Layout(processes=3, scaling="strong").batches(32)


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
    assert settings.layout == parallel.Layout(processes=2, scaling="strong")
    assert settings.describe()["layout"] == {"devices": None, "processes": 2, "scaling": "strong"}


def test_rank_comes_from_the_launcher_or_torchrun():
    assert parallel.rank_from_env({}) is None
    info = parallel.rank_from_env(parallel.rank_env(1, 2, ["127.0.0.1:5000", "127.0.0.1:5001"]))
    assert (info.rank, info.world, info.coordinator, info.source) == (1, 2, "127.0.0.1:5000", "kerasbench")
    torchrun = parallel.rank_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "h0",
                                       "MASTER_PORT": "29500"})
    assert (torchrun.rank, torchrun.local_rank, torchrun.coordinator, torchrun.source) == (3, 1, "h0:29500",
                                                                                          "torchrun")
    with pytest.raises(BackendError, match="not a valid process"):
        parallel.rank_from_env({parallel.RANK_ENV: "2", parallel.WORLD_ENV: "2", parallel.ADDRESSES_ENV: "a:1"})


def test_more_gpus_than_present_fail_clearly(tmp_path, monkeypatch):
    with pytest.raises(BackendError, match=r"--devices 4 asks for 4 GPUs, but the jax backend sees 2.*--device cpu"):
        parallel.check_device_count(4, 2, kind="gpu", backend="jax", flag="--devices")
    parallel.check_device_count(4, 0, kind="cpu", backend="jax", flag="--devices")  # simulated: any N
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(BackendError, match="--processes 2 asks for 2 GPUs"):  # before any process starts
        parallel.run_ranks(["--version"], 2, cwd=ROOT, device="gpu", log_dir=tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("value", "ids"), [("0,1", ["0", "1"]), ("", []), ("-1", []), ("3", ["3"])])
def test_visible_gpus_read_cuda_visible_devices(value, ids):
    assert parallel.visible_gpus({"CUDA_VISIBLE_DEVICES": value}) == ids


def test_ranks_share_the_cpus_equally():
    assert [parallel.cpu_share(r, 2, [0, 1, 2, 3]) for r in range(2)] == [[0, 1], [2, 3]]
    assert [parallel.cpu_share(r, 4, [0, 1]) for r in range(4)] == [[0], [1], [0], [1]]


# ------------------------------------------------------------------------------------------ launcher

def alive(pid: int) -> bool:
    """Whether ``pid`` exists, even as a zombie (a launcher must reap what it started)."""
    return Path(f"/proc/{pid}").exists()


RANK_SCRIPT = """
import os, signal, sys, time
from pathlib import Path
rank = int(os.environ["KERASBENCH_RANK"])
folder = Path(sys.argv[1])
if rank == 0 and "stubborn" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends it
(folder / f"env{rank}.json").write_text(__import__("json").dumps(dict(os.environ)))
(folder / f"ready{rank}").touch()
if "fail2" in sys.argv and rank == 2:
    print("boom: rank 2 gives up", flush=True)
    sys.exit(3)
if "ok" not in sys.argv:
    time.sleep(60)
"""


def launch(tmp_path: Path, pids: list[int], *args: str) -> None:
    """Three ranks of RANK_SCRIPT (their pids go to ``pids`` as they start)."""

    def started(procs: list[subprocess.Popen]) -> None:
        pids.extend(p.pid for p in procs)
        if "kill1" in args:
            deadline = time.monotonic() + 30
            while len(list(tmp_path.glob("ready*"))) < len(procs) and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(procs[1].pid, signal.SIGKILL)

    parallel.launch([sys.executable, "-c", RANK_SCRIPT, str(tmp_path), *args], 3, log_dir=tmp_path / "logs",
                    grace_s=1.0, on_start=started)


def test_a_killed_rank_stops_every_other_rank_and_names_itself(tmp_path):
    pids: list[int] = []
    start = time.monotonic()
    with pytest.raises(parallel.RankFailed) as failed:
        launch(tmp_path, pids, "kill1", "stubborn")
    # Rank 1's death is seen at once; rank 0 ignores SIGTERM, so it gets SIGKILL after the 1 s grace.
    assert time.monotonic() - start < 20
    error = failed.value
    assert (error.rank, error.code, error.returncode) == (1, -9, 1)
    assert "rank 1 of 3 ended with exit code -9 (killed by SIGKILL)" in str(error)
    assert "SIGKILL" in error.stopped[0] and "SIGTERM" in error.stopped[2]
    assert len(pids) == 3 and not any(alive(pid) for pid in pids), "a rank outlived its launcher"


def test_a_failing_rank_is_named_with_its_code_and_output(tmp_path):
    pids: list[int] = []
    with pytest.raises(parallel.RankFailed) as failed:
        launch(tmp_path, pids, "fail2")
    assert (failed.value.rank, failed.value.returncode) == (2, 3)
    assert "exit code 3" in str(failed.value) and "boom: rank 2 gives up" in str(failed.value)
    assert not any(alive(pid) for pid in pids)


def test_ranks_get_their_rank_and_free_local_addresses(tmp_path):
    pids: list[int] = []
    launch(tmp_path, pids, "ok")
    envs = [json.loads((tmp_path / f"env{r}.json").read_text()) for r in range(3)]
    assert [e[parallel.RANK_ENV] for e in envs] == ["0", "1", "2"] and {e[parallel.WORLD_ENV] for e in envs} == {"3"}
    addresses = envs[0][parallel.ADDRESSES_ENV].split(",")
    assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)
    assert not any(alive(pid) for pid in pids)


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


# ------------------------------------------------------------------------------- records, report, compare

def layout_document(layout: str, efficiency: float, *, simulated: bool = True, scaling: str = "weak",
                    train: tuple[float, float] = (0.100, 0.004)) -> dict:
    """A jax train-step result of a data-parallel layout ("dp2", "mp4"), as DataParallel.describe writes it."""
    mode, n = ("devices" if layout.startswith("dp") else "processes"), int(layout[2:])
    document = make_result("jax", kinds=("train_step",), train=train, batch_size=32 * n)
    bench = document["benchmarks"][0]
    bench["name"] = bench["name"].replace("]", f"-{layout}]")
    bench["extra_info"]["context"]["layout"] = dataclasses.asdict(results.ReplicaLayout(
        engine="keras.distribution.DataParallel", mode=mode, replicas=n, processes=1 if mode == "devices" else n,
        scaling=scaling, per_replica_batch=32, global_batch=32 * n, simulated=simulated,
        simulated_why="2 XLA host-platform devices share 2 cores" if simulated else None,
    ))
    ranks = n if mode == "processes" else 1
    scaled = results.Scaling(slowest_replica_step_s=train[0], rank_step_s=[train[0]] * ranks, reference_batch=32,
                             reference_step_s=train[0] * n * efficiency / n, efficiency=efficiency)
    equivalence = results.Equivalence(steps=2, ranks_agree=True, max_weight_diff_vs_one_device=3e-8)
    bench["extra_info"]["metrics"].update(samples_per_s=32 * n / train[0], scaling=dataclasses.asdict(scaled),
                                          equivalence=dataclasses.asdict(equivalence))
    return document


def test_files_without_a_layout_read_as_one_device(tmp_path):
    write_result(tmp_path, make_result("jax", kinds=("train_step",)))
    [result] = results.results_of(results.load([tmp_path])[0])
    assert result.layout == results.ReplicaLayout() and result.layout.name == "single"
    assert not result.distributed and not result.simulated and result.layout.replicas == 1
    assert result.step.scaling is None and result.step.equivalence is None


def test_report_shows_scaling_apart_and_labels_simulated_devices(tmp_path):
    write_result(tmp_path, make_result("jax", kinds=("train_step",)), "single.json")
    write_result(tmp_path, layout_document("dp2", 0.8), "dp2.json")
    write_result(tmp_path, layout_document("mp4", 0.5), "mp4.json")
    found = results.results_of(results.load([tmp_path])[0])
    text = report.render_markdown(found)
    section = text.split("## Data-parallel scaling (simulated devices)", 1)[1]
    assert "| dp2 | weak | 2 | 32 / 64 |" in section and "| 0.80 | 3.0e-08 | simulated |" in section
    assert "| mp4 | weak | 4 | 32 / 128 |" in section and "| 0.50 | 3.0e-08 | simulated |" in section
    assert "Simulated: 2 XLA host-platform devices share 2 cores." in section
    assert text.split("## Data-parallel", 1)[0].count("| jax 1.0.0") == 1  # the main table: one device only
    rows = report.render_csv(found).splitlines()
    header = rows[0].split(",")
    efficiency = sorted(row.split(",")[header.index("scaling_efficiency")] for row in rows[1:])
    assert efficiency == ["", "0.5", "0.8"]
    written = plots.plot(found, tmp_path / "plots")
    assert tmp_path / "plots" / "data_parallel_efficiency.png" in written


def test_the_engine_describes_a_layout_the_record_takes_as_it_is():
    engine = parallel.DataParallel(parallel.Layout(devices=2, scaling="strong"))
    layout = engine.context(32)["layout"]
    assert isinstance(layout, results.ReplicaLayout) and layout.name == "dp2" and layout.distributed
    assert (layout.per_replica_batch, layout.global_batch, layout.scaling) == (16, 32, "strong")
    assert parallel.Layout(devices=2).suffix == f"-{layout.name}"  # benchmark ids and records spell it alike
    assert parallel.Engine().context(32) == {}  # one device: the record's default layout


def test_compare_never_pairs_simulated_with_real_devices(tmp_path):
    base = write_result(tmp_path, layout_document("dp2", 0.8, simulated=True), "base.json")
    cur = write_result(tmp_path, layout_document("dp2", 0.8, simulated=False, train=(0.5, 0.004)), "cur.json")
    changes, regressions = compare.compare([base], [cur])
    assert not regressions  # 5x slower, but a simulated layout is no baseline for real devices
    assert [c.verdict for c in changes] == [compare.SIMULATED_VERDICT]
    same = write_result(tmp_path, layout_document("dp2", 0.8, simulated=True, train=(0.5, 0.004)), "same.json")
    [change] = compare.compare([base], [same])[0]  # like with like is still compared
    assert change.verdict != compare.SIMULATED_VERDICT and change.change == pytest.approx(400)


# ------------------------------------------------------------------ every backend: same weights as one device

@pytest.mark.per_backend
def test_devices_train_like_one_device(tmp_path):
    adapter = backends.current()
    if adapter.parallel_engine == "torch.distributed":
        with pytest.raises(BackendError, match="--processes N"):  # no one-process engine in Keras 3.15
            adapter.simulate_devices(2)
        return
    out = tmp_path / "devices.json"
    proc = run_python(ROOT / "tests" / "parallel_worker.py", out, "devices", "2", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(out.read_text())["dp2"]
    assert found["max_weight_change"] > 100 * TOLERANCE  # the steps did train
    assert found["max_weight_diff"] < TOLERANCE, found


@pytest.mark.per_backend
def test_two_processes_train_like_one_device_and_a_killed_rank_fails_the_run(tmp_path):
    # The one multi-process test per backend, a real `pytest bench/ --processes 2`: train_step first (its
    # record holds every rank's times and the check against one device), then accuracy for many epochs,
    # during which rank 1 is killed.
    command = [sys.executable, "-m", "pytest", "bench/test_train_step.py", "bench/test_accuracy.py", "-q",
               "--processes", "2", *TINY_RUN, "--epochs", "500", "--results-dir", str(tmp_path)]
    launcher = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ranks: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 300
        while not list(tmp_path.glob("*.json")) and launcher.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        ranks = _ranks_of(launcher.pid)
        assert list(tmp_path.glob("*.json")) and set(ranks) == {0, 1}, "the run did not get to its second benchmark"
        os.kill(ranks[1], signal.SIGKILL)
        output, _ = launcher.communicate(timeout=60)  # bounded: rank 0 is stopped within the 5 s grace
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.communicate()
        for pid in ranks.values():  # only if the launcher failed at its job
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert launcher.returncode == 1, output[-3000:]
    assert "rank 1 of 2 ended with exit code -9 (killed by SIGKILL)" in output
    assert not any(alive(pid) for pid in ranks.values()), "a rank outlived the run"
    [run] = results.load([tmp_path])[0]  # rank 0's file: whole, the finished benchmark kept
    # Rank 0 either gets the launcher's SIGTERM first (an unfinished run) or its next collective fails
    # on the dead peer and pytest ends with a failed benchmark (exit 1): never a clean finish.
    assert not run.info.finished or run.info.exitstatus not in (0, None)
    [step] = [r for r in run.results if r.kind == "train_step"]
    assert step.name.endswith("-mp2]") and step.simulated and step.layout.processes == 2
    assert step.layout.name == "mp2"
    assert len(step.step.scaling.rank_step_s) == 2 and step.step.scaling.efficiency > 0
    assert step.step.equivalence.ranks_agree and step.step.equivalence.max_weight_diff_vs_one_device < TOLERANCE
    if step.layout.keras_train_function:  # TensorFlow: our multi-worker step exists only because Keras's fails
        assert step.layout.keras_train_function.startswith("fails: ValueError"), (
            "Keras's own train_function now runs under MultiWorkerMirroredStrategy: use it in "
            "TensorFlowDataParallel instead of model.train_step under strategy.run")


def _ranks_of(launcher: int) -> dict[int, int]:
    """rank -> pid of the launcher's children, from /proc (their KERASBENCH_RANK)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _parent(int(entry.name)) == launcher:
            try:
                env = dict(item.split("=", 1) for item in (entry / "environ").read_bytes().decode().split("\0")
                           if "=" in item)
            except OSError:
                continue
            if parallel.RANK_ENV in env:
                found[int(env[parallel.RANK_ENV])] = int(entry.name)
    return found
