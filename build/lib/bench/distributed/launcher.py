"""N local processes of one command: ports, CPU shares, stopping every rank when one fails, reaping all.

``run_ranks`` is what ``pytest bench/ --processes N`` does: the same pytest command as N ranks. The
launcher imports no backend: each rank sets up its own (bench/distributed/engine.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from bench.backends.base import BackendError
from bench.distributed.layout import (
    ADDRESSES_ENV,
    LAUNCHER_ENV,
    LOCAL_RANK_ENV,
    RANK_ENV,
    WORLD_ENV,
    check_gpu_count,
)

GRACE_S = 5.0  # how long a stopped rank gets to save its results after SIGTERM, before SIGKILL
FINISH_S = 120.0  # how long the other ranks may take to exit after one finished cleanly
POLL_S = 0.1


class RankFailed(Exception):
    """A rank of a multi-process run ended badly; the others were stopped."""

    def __init__(self, rank: int, world: int, code: int | None, log: Path | None, stopped: dict[int, str],
                 why: str | None = None) -> None:
        self.rank, self.world, self.code, self.log, self.stopped = rank, world, code, log, stopped
        what = why or f"ended with {exit_text(code)}"
        others = ", ".join(f"rank {r}: {how}" for r, how in sorted(stopped.items())) or "none left"
        text = f"rank {rank} of {world} {what}; the other ranks were stopped ({others})"
        if log is not None:
            text += f". Its output: {log}" + _tail(log)
        super().__init__(text)

    @property
    def returncode(self) -> int:
        """The launcher's exit status: the rank's own when it exited with one, else 1."""
        return self.code if self.code is not None and self.code > 0 else 1


def killed_by(code: int | None) -> str | None:
    """The signal that ended a process with status ``code`` ("SIGKILL", or "signal 77" without a name), else None."""
    if code is None or code >= 0:
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def exit_text(code: int | None) -> str:
    """'exit code 3', 'exit code -9 (killed by SIGKILL)', 'no exit code'."""
    if code is None:
        return "no exit code"
    signal_name = killed_by(code)
    return f"exit code {code}" + (f" (killed by {signal_name})" if signal_name else "")


def _tail(path: Path, lines: int = 8) -> str:
    try:
        last = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return ("\n  " + "\n  ".join(last)) if last else ""


def visible_gpus(env: Mapping[str, str] | None = None) -> list[str]:
    """GPU ids a process started with ``env`` could use, without starting any backend.

    CUDA_VISIBLE_DEVICES when set (empty or -1: none), else the NVIDIA driver's device files.
    """
    env = os.environ if env is None else env
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is not None:
        ids = [v.strip() for v in value.split(",") if v.strip()]
        return [] if not ids or ids[0].startswith("-") else ids
    try:
        names = os.listdir("/dev")
    except OSError:
        return []
    return sorted((m.group(1) for m in map(re.compile(r"nvidia(\d+)$").match, names) if m), key=int)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free on ``host`` now (held open together, so no two are the same)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]


def die_with_launcher() -> None:
    """In a rank, first thing: get SIGTERM when the launcher dies (Linux prctl), so no rank outlives it.

    Called by the rank itself (before it starts threads), not in a pre-exec hook: forking a
    multi-threaded launcher and running code before exec can deadlock.
    """
    launcher = os.environ.get(LAUNCHER_ENV)
    if not launcher:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    if str(os.getppid()) != launcher:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def cpu_share(rank: int, world: int, cpus: Sequence[int]) -> list[int]:
    """The CPUs rank ``rank`` of ``world`` gets on one machine: an equal slice (past one rank per CPU, one shared)."""
    per = len(cpus) // world
    if per == 0:
        return [cpus[rank % len(cpus)]]
    return list(cpus[rank * per:(rank + 1) * per])


def rank_env(rank: int, world: int, addresses: Sequence[str], gpus: Sequence[str] = ()) -> dict[str, str]:
    """The variables that make a process rank ``rank`` of ``world`` (and show it its own GPU, when there are GPUs)."""
    env = {RANK_ENV: str(rank), WORLD_ENV: str(world), LOCAL_RANK_ENV: str(rank), ADDRESSES_ENV: ",".join(addresses),
           LAUNCHER_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[rank]  # one device per process: the engines use "the" GPU
    return env


def launch(command: Sequence[str], world: int, *, log_dir: Path, cwd: str | os.PathLike | None = None,
           env: Mapping[str, str] | None = None, gpus: Sequence[str] = (), split_cpus: bool = False,
           grace_s: float = GRACE_S, finish_s: float = FINISH_S, poll_s: float = POLL_S,
           on_start: Callable[[list[subprocess.Popen]], None] | None = None) -> None:
    """Run ``command`` as ranks 0..world-1 on 127.0.0.1 and wait for all of them; return when all exited 0.

    With ``split_cpus`` each rank may run only on its ``cpu_share`` of this process's CPUs (so N
    simulated devices on one CPU do not all fight for every core; each backend sizes its threads to
    that). Rank 0's output goes to this process's stdout; rank i's to ``log_dir/rank<i>.log``. The first
    rank to end with a non-zero status (or, once one exited 0, a rank still running after
    ``finish_s``) raises ``RankFailed`` naming it, after the others were stopped: SIGTERM (a pytest
    rank then saves what it finished), SIGKILL after ``grace_s``, and every child reaped. Ctrl-C or
    SIGTERM to the launcher stops them the same way. A rank that calls ``die_with_launcher`` also
    gets SIGTERM if the launcher itself is killed.
    """
    if gpus and len(gpus) < world:
        raise BackendError(f"{world} processes need {world} GPUs; {len(gpus)} visible")
    addresses = [f"127.0.0.1:{port}" for port in free_ports(world)]
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []
    logs: list[Path | None] = []
    handles: list[IO] = []
    restore = _terminate_as_interrupt()
    try:
        for rank in range(world):
            log = None if rank == 0 else log_dir / f"rank{rank}.log"
            out = None if log is None else open(log, "w")  # noqa: SIM115 -- closed in the finally below
            if out is not None:
                handles.append(out)
            child_env = {**(os.environ if env is None else env), **rank_env(rank, world, addresses, gpus)}
            procs.append(subprocess.Popen(list(command), cwd=cwd, env=child_env, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=None if out is None else subprocess.STDOUT))
            if split_cpus:  # set from here, at once: the backends size their thread pools much later, at start
                with contextlib.suppress(ProcessLookupError):
                    os.sched_setaffinity(procs[-1].pid, cpu_share(rank, world, sorted(os.sched_getaffinity(0))))
            logs.append(log)
        if on_start is not None:
            on_start(procs)
        failed = _wait(procs, finish_s, poll_s)
        if failed is not None:
            rank, code, why = failed
            raise RankFailed(rank, world, code, logs[rank], stop(procs, grace_s, skip=rank), why)
    finally:
        stop(procs, grace_s)
        for handle in handles:
            handle.close()
        restore()


def _wait(procs: list[subprocess.Popen], finish_s: float, poll_s: float) -> tuple[int, int | None, str | None] | None:
    """None when every process exited 0; else (rank, code, why) of the first that failed or hung."""
    first_done: float | None = None
    while True:
        codes = [p.poll() for p in procs]
        failed = [(rank, code) for rank, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            # Seen in the same poll, a rank killed by a signal is the cause; an exit status, its echo
            # (the others' collectives fail once it is gone).
            rank, code = min(failed, key=lambda f: (f[1] > 0, f[0]))
            return rank, code, None
        if all(code == 0 for code in codes):
            return None
        if any(code == 0 for code in codes):
            first_done = first_done or time.monotonic()
            if time.monotonic() - first_done > finish_s:
                rank = next(r for r, c in enumerate(codes) if c is None)
                return rank, None, f"was still running {finish_s:.0f} s after another rank had finished"
        time.sleep(poll_s)


def stop(procs: Sequence[subprocess.Popen], grace_s: float = GRACE_S, skip: int | None = None) -> dict[int, str]:
    """SIGTERM every running process, SIGKILL those left after ``grace_s``, reap all; how each ended."""
    how: dict[int, str] = {}
    running = [(r, p) for r, p in enumerate(procs) if p.poll() is None]
    for _, p in running:
        with contextlib.suppress(ProcessLookupError):
            p.terminate()
    deadline = time.monotonic() + grace_s
    for rank, p in running:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
            how[rank] = f"stopped by SIGTERM, {exit_text(p.returncode)}"
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            how[rank] = f"did not stop within {grace_s:.0f} s of SIGTERM: SIGKILL"
    for rank, p in enumerate(procs):
        if rank not in how and rank != skip and p.returncode is not None:
            how[rank] = f"had ended, {exit_text(p.returncode)}"
    return how


def _terminate_as_interrupt() -> Callable[[], None]:
    """SIGTERM raises KeyboardInterrupt while the launcher waits (so it stops its ranks); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


def run_ranks(args: Sequence[str], world: int, *, cwd: str | os.PathLike, device: str, log_dir: Path,
              threads_given: bool = False) -> None:
    """``python -m pytest ARGS`` as ``world`` ranks (``pytest bench/ --processes N``); RankFailed if one fails.

    On GPU each rank gets its own (CUDA_VISIBLE_DEVICES); asking for more processes than GPUs
    fails here, before anything starts. With no GPU the ranks share the CPU: unless --threads was
    given, each gets an equal slice of the CPUs and as many threads (``cpu_share``).
    """
    gpus = visible_gpus() if device != "cpu" else []
    if device == "gpu" or gpus:
        check_gpu_count(world, len(gpus), backend="this", flag="--processes")
    args = list(args)
    split = not gpus and not threads_given
    if split:
        args += ["--threads", str(len(cpu_share(0, world, sorted(os.sched_getaffinity(0)))))]
    launch([sys.executable, "-m", "pytest", *args], world, cwd=cwd, log_dir=log_dir, gpus=gpus[:world],
           split_cpus=split)
