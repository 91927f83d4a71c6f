"""``python -m bench run``: ``pytest bench/`` once per backend, each in its own process.

Keras fixes its backend at import, so each backend gets a fresh interpreter. A backend that is
not installed, fails, or is killed is reported and the run goes on with the next one; every
result file a backend finished is kept (they are written after each benchmark).

``--repeat N`` runs each backend N times, interleaved (tensorflow, jax, torch, tensorflow, ...), so
that a drift of the machine spreads over every backend instead of landing on one. The processes of
one run share a run id (``results.RUN_ID_ENV``) and know their repeat index, which their result
files record: the report and compare then treat them as one run of N processes. ``python -m bench
ab`` interleaves two checkouts ("sides") the same way: base, head, then head, base, ... per backend,
and ``matrix`` interleaves its cells. A side is code plus an environment (``bench.environments``):
its processes start with the side's interpreter and package set (an overlay in front of this venv,
or a full environment of their own), and a backend missing from a side's environment is skipped
for that side only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from bench.backends import BackendError, check_backend
from bench.distributed.launcher import killed_by
from bench.environments import PROJECT, Environment
from bench.results import REPEAT_INDEX_ENV, RUN_ID_ENV
from bench.settings import CHECKOUT
from bench.training import PROGRESS_PREFIX

T = TypeVar("T")
NO_TESTS_COLLECTED = 5  # pytest's exit code when no test matched


@dataclass
class Outcome:
    backend: str
    status: str  # "ok", "not installed", "no benchmark matched", "failed (exit 1)", "killed (SIGKILL)", ...
    seconds: float = 0.0
    log: Path | None = None
    label: str = ""  # e.g. "jax (2/3)" or "base jax (2/3)"; the backend's name alone for a single run
    side: str = ""  # the side's name ("base", a matrix cell); "" for a plain run or a backend skipped everywhere

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed(self) -> bool:
        """A process that ran and did not finish cleanly (a backend not installed was only skipped)."""
        return not (self.ok or self.status == "not installed")


@dataclass(frozen=True)
class Side:
    """One checkout whose benchmarks run, in one environment: this checkout, or (ab) a worktree of another commit."""

    name: str  # "" for a plain run; "base" / "head" for ab; a matrix cell's name
    root: Path  # the checkout whose bench/ runs (its own code, its own conftest)
    results: Path  # where its result files go
    run_id: str  # shared by every process of this side (results.RUN_ID_ENV)
    args: tuple[str, ...] = ()  # benchmark options of this side only, after the shared ones (the last wins)
    environment: Environment = PROJECT  # the interpreter and packages its processes start with
    # Backends whose processes start with an environment of their own instead (the GPU set: one venv per CUDA major).
    backend_environments: tuple[tuple[str, Environment], ...] = ()

    def environment_for(self, backend: str) -> Environment:
        return dict(self.backend_environments).get(backend, self.environment)


def new_run_id() -> str:
    return f"{datetime.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def abba(items: Sequence[T], index: int) -> list[T]:
    """Round ``index`` of an ABBA order: ``items`` as given in even rounds, reversed in odd ones.

    Whatever the later of a pair inherits from the earlier (a warm cache, a CPU still boosting or
    already hot) then falls on every item alike instead of always on the last.
    """
    return list(items) if index % 2 == 0 else list(reversed(items))


def run_backends(backends: list[str], pytest_args: list[str], run_dir: Path, repeat: int = 1,
                 environment: Environment = PROJECT,
                 backend_environments: Mapping[str, Environment] | None = None,
                 run_id: str | None = None) -> list[Outcome]:
    """Run the benchmarks under each backend, ``repeat`` times interleaved; results and logs go to ``run_dir``.

    ``backend_environments`` gives a backend an environment of its own instead of ``environment``.
    ``run_id`` joins these processes to an earlier call's run (``--seeds auto``'s looks are one run);
    by default they are a run of their own.
    """
    run_dir = run_dir.resolve()  # the children run in the checkout: a relative folder would move
    run_dir.mkdir(parents=True, exist_ok=True)
    side = Side("", CHECKOUT, run_dir, run_id or new_run_id(), environment=environment,
                backend_environments=tuple((backend_environments or {}).items()))
    return run_interleaved(backends, pytest_args, [side], repeat, run_dir)


def run_interleaved(backends: list[str], pytest_args: list[str], sides: Sequence[Side], repeat: int,
                    log_dir: Path) -> list[Outcome]:
    """Each repeat runs each backend once per side: r1 tf base, r1 tf head, r1 jax base, ..., r2 tf head, r2 tf base.

    The sides take turns going first (base-head, then head-base: an ABBA order), so that whatever
    the second process of a pair inherits from the first (a warm page cache, a CPU still boosting
    or already hot) falls on both sides alike instead of always on head. A backend that is not
    installed is reported once and skipped; an interrupted process (Ctrl-C) stops everything after it.
    """
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    outcomes: list[Outcome] = []
    runnable: dict[str, list[Side]] = {}  # backend -> the sides whose environment has it
    problems: dict[tuple[str, str], str | None] = {}
    for name in backends:
        missing = {}
        for side in sides:
            key = (name, side.environment_for(name).id)
            if key not in problems:
                problems[key] = _missing_backend(name, side)
            missing[side.name] = problems[key]
        ready = [side for side in sides if missing[side.name] is None]
        if not ready:
            print(f"{name}: skipped: {next(iter(missing.values()), 'no side to run')}", flush=True)
            outcomes.append(Outcome(name, "not installed", label=name))
            continue
        for side in sides:
            if missing[side.name] is not None:
                label = f"{side.name} {name}"
                print(f"{label}: skipped: {missing[side.name]}", flush=True)
                outcomes.append(Outcome(name, "not installed", label=label, side=side.name))
        runnable[name] = ready
    total = sum(len(ready) for ready in runnable.values()) * repeat
    done = 0
    for index in range(repeat):
        for name, ready in runnable.items():
            for side in abba(ready, index):
                done += 1
                label = " ".join(filter(None, [side.name, name, f"({index + 1}/{repeat})" if repeat > 1 else ""]))
                stem = "-".join(filter(None, [_slug(side.name), name, str(index + 1) if repeat > 1 else ""]))
                print(f"[{done}/{total}] {label}: running pytest bench/ {' '.join(pytest_args)}", flush=True)
                outcome = _run_one(name, pytest_args, side, index, log_dir / f"{stem}.log")
                outcome.label, outcome.side = label, side.name
                print(f"[{done}/{total}] {label}: {outcome.status} after {outcome.seconds:.0f} s "
                      f"(log: {outcome.log})", flush=True)
                outcomes.append(outcome)
                if outcome.status == "interrupted":
                    return outcomes
    return outcomes


def _slug(name: str) -> str:
    """A side's name as a file name: 'keras=3.12.0 jax=0.10.2' -> 'keras=3.12.0_jax=0.10.2'."""
    return re.sub(r"[^A-Za-z0-9=.+-]+", "_", name).strip("_")


def _missing_backend(name: str, side: Side) -> str | None:
    """Why ``name`` cannot run in ``side``'s environment, or None.

    This interpreter answers for the project venv and an overlay (which adds pure-Python packages in
    front of it); a full environment's or a named venv's own interpreter answers for itself, from the side's
    checkout.
    """
    environment = side.environment_for(name)
    if not environment.own_interpreter:
        try:
            check_backend(name)
        except BackendError as exc:
            return str(exc)
        return None
    code = ("import sys\nfrom bench.backends import BackendError, check_backend\n"
            "try:\n    check_backend(sys.argv[1])\nexcept BackendError as exc:\n    sys.exit(str(exc))\n")
    done = subprocess.run([environment.python, "-c", code, name], cwd=side.root, capture_output=True, text=True,
                          env=environment.variables(os.environ))
    if done.returncode == 0:
        return None
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {done.returncode}"


def _run_one(name: str, pytest_args: list[str], side: Side, repeat_index: int, log: Path) -> Outcome:
    environment = side.environment_for(name)
    command = [environment.python, "-m", "pytest", "bench/", "-v",
               "--results-dir", str(side.results), *pytest_args, *side.args]
    env = environment.variables({**os.environ, "KERAS_BACKEND": name, "PYTHONUNBUFFERED": "1",
                                      RUN_ID_ENV: side.run_id, REPEAT_INDEX_ENV: str(repeat_index)})
    start = time.perf_counter()  # wall time of a whole child process: no device sync involved
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", buffering=1) as fh:  # line-buffered: the log grows while the backend runs
        proc = subprocess.Popen(command, cwd=side.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        try:
            for line in proc.stdout:  # progress: each benchmark's PASSED/FAILED line as it lands
                fh.write(line)
                if PROGRESS_PREFIX in line:  # after pytest's "." when -q is passed on
                    _show_progress(line[line.index(PROGRESS_PREFIX):].strip())
                elif "::" in line and any(word in line for word in ("PASSED", "FAILED", "ERROR")):
                    _show_progress("")
                    print(f"    {line.strip()}", flush=True)
            _show_progress("")
            code = proc.wait()
        except KeyboardInterrupt:
            # The child got the same Ctrl-C and saves what it finished; wait for it, then stop.
            code = proc.wait()
            return Outcome(name, "interrupted", time.perf_counter() - start, log)
    seconds = time.perf_counter() - start
    if code == 0:
        return Outcome(name, "ok", seconds, log)
    if code == NO_TESTS_COLLECTED:
        return Outcome(name, "no benchmark matched (check -k and the benchmark names: pytest bench/ --collect-only)",
                       seconds, log)
    if code < 0:
        return Outcome(name, f"killed ({killed_by(code)})", seconds, log)
    return Outcome(name, f"failed (exit {code}): {_last_error(log)}", seconds, log)


def _show_progress(text: str) -> None:
    """A training progress line (bench.training.Progress): rewritten in place on a terminal, else printed.

    An empty ``text`` clears the line on a terminal, before a benchmark's PASSED/FAILED line.
    """
    if sys.stdout.isatty():
        print(f"\r\x1b[K{'    ' + text if text else ''}", end="", flush=True)
    elif text:
        print(f"    {text}", flush=True)


def _last_error(log: Path) -> str:
    """The most telling line of a failed run's log, whole, for the summary (the fix it names is at its end)."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if "error" in line.lower() or line.startswith(("E ", "FAILED", "kerasbench:", "!!!")):
            return _unframed(line)
    return _unframed(lines[-1]) if lines else "no output"


def _unframed(line: str) -> str:
    """pytest.exit's '!!!!! _pytest.outcomes.Exit: kerasbench: ... !!!!!' as the message alone."""
    inner = line.strip("!").strip()
    return inner.split("Exit: ", 1)[1] if inner.startswith("_pytest.outcomes.Exit: ") else inner


def default_run_dir(results_dir: Path, prefix: str = "") -> Path:
    """``<results>/runs/<prefix><time>``, e.g. runs/ab-20261129T150000."""
    return results_dir / "runs" / f"{prefix}{datetime.now():%Y%m%dT%H%M%S}"


def summary(outcomes: list[Outcome]) -> str:
    lines = ["| backend | status | wall s |", "|---|---|---:|"]
    for o in outcomes:
        lines.append(f"| {o.label or o.backend} | {o.status} | {o.seconds:.0f} |")
    return "\n".join(lines) + "\n"
