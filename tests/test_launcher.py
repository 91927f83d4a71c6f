"""The launcher (bench/distributed/launcher.py): CPU shares, GPUs, exit statuses, and N processes that all end.

Every test that starts processes bounds its time and checks that none of them outlived it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.backends import BackendError
from bench.distributed import launcher
from bench.distributed.layout import ADDRESSES_ENV, RANK_ENV, WORLD_ENV
from tests.conftest import ROOT


def alive(pid: int) -> bool:
    """Whether ``pid`` exists, even as a zombie (a launcher must reap what it started)."""
    return Path(f"/proc/{pid}").exists()


def test_more_processes_than_gpus_fail_before_anything_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(BackendError, match="--processes 2 asks for 2 GPUs"):
        launcher.run_ranks(["--version"], 2, cwd=ROOT, device="gpu", log_dir=tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("value", "ids"), [("0,1", ["0", "1"]), ("", []), ("-1", []), ("3", ["3"])])
def test_visible_gpus_read_cuda_visible_devices(value, ids):
    assert launcher.visible_gpus({"CUDA_VISIBLE_DEVICES": value}) == ids


def test_ranks_share_the_cpus_equally():
    assert [launcher.cpu_share(r, 2, [0, 1, 2, 3]) for r in range(2)] == [[0, 1], [2, 3]]
    assert [launcher.cpu_share(r, 4, [0, 1]) for r in range(4)] == [[0], [1], [0], [1]]


def test_exit_status_text_names_the_signal_even_without_a_name():
    assert launcher.exit_text(3) == "exit code 3" and launcher.exit_text(None) == "no exit code"
    assert launcher.exit_text(-9) == "exit code -9 (killed by SIGKILL)"
    unnamed = next(n for n in range(signal.SIGRTMIN + 1, signal.SIGRTMAX) if n not in set(signal.Signals))
    assert launcher.killed_by(-unnamed) == f"signal {unnamed}"  # a real-time signal: no name in Python
    assert launcher.exit_text(-unnamed) == f"exit code {-unnamed} (killed by signal {unnamed})"
    assert launcher.killed_by(0) is None and launcher.killed_by(-15) == "SIGTERM"


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

    launcher.launch([sys.executable, "-c", RANK_SCRIPT, str(tmp_path), *args], 3, log_dir=tmp_path / "logs",
                    grace_s=1.0, on_start=started)


def test_a_killed_rank_stops_every_other_rank_and_names_itself(tmp_path):
    pids: list[int] = []
    start = time.monotonic()
    with pytest.raises(launcher.RankFailed) as failed:
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
    with pytest.raises(launcher.RankFailed) as failed:
        launch(tmp_path, pids, "fail2")
    assert (failed.value.rank, failed.value.returncode) == (2, 3)
    assert "exit code 3" in str(failed.value) and "boom: rank 2 gives up" in str(failed.value)
    assert not any(alive(pid) for pid in pids)


def test_ranks_get_their_rank_and_free_local_addresses(tmp_path):
    pids: list[int] = []
    launch(tmp_path, pids, "ok")
    envs = [json.loads((tmp_path / f"env{r}.json").read_text()) for r in range(3)]
    assert [e[RANK_ENV] for e in envs] == ["0", "1", "2"] and {e[WORLD_ENV] for e in envs} == {"3"}
    addresses = envs[0][ADDRESSES_ENV].split(",")
    assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)
    assert not any(alive(pid) for pid in pids)
