"""``python -m bench run``: ``pytest bench/`` once per backend, each in its own process.

Keras fixes its backend at import, so each backend gets a fresh interpreter. A backend that is
not installed, fails, or is killed is reported and the run goes on with the next one; every
result file a backend finished is kept (they are written after each benchmark).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.backends import BackendError, check_backend

ROOT = Path(__file__).resolve().parents[1]
NO_TESTS_COLLECTED = 5  # pytest's exit code when no test matched


@dataclass
class Outcome:
    backend: str
    status: str  # "ok", "not installed", "no benchmark matched", "failed (exit 1)", "killed (SIGKILL)", ...
    seconds: float = 0.0
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_backends(backends: list[str], pytest_args: list[str], run_dir: Path) -> list[Outcome]:
    """Run the benchmarks under each backend in turn; results and logs go to ``run_dir``."""
    run_dir = run_dir.resolve()  # the children run in the checkout: a relative folder would move
    run_dir.mkdir(parents=True, exist_ok=True)
    outcomes: list[Outcome] = []
    for index, name in enumerate(backends, start=1):
        prefix = f"[{index}/{len(backends)}] {name}"
        try:
            check_backend(name)
        except BackendError as exc:
            print(f"{prefix}: skipped: {exc}", flush=True)
            outcomes.append(Outcome(name, "not installed"))
            continue
        print(f"{prefix}: running pytest bench/ {' '.join(pytest_args)}", flush=True)
        outcome = _run_one(name, pytest_args, run_dir)
        print(f"{prefix}: {outcome.status} after {outcome.seconds:.0f} s (log: {outcome.log})", flush=True)
        outcomes.append(outcome)
        if outcome.status == "interrupted":
            break
    return outcomes


def _run_one(name: str, pytest_args: list[str], run_dir: Path) -> Outcome:
    log = run_dir / f"{name}.log"
    command = [sys.executable, "-m", "pytest", "bench/", "-v",
               "--results-dir", str(run_dir), *pytest_args]
    env = {**os.environ, "KERAS_BACKEND": name, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()  # wall time of a whole child process: no device sync involved
    with open(log, "w") as fh:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        try:
            for line in proc.stdout:  # progress: each benchmark's PASSED/FAILED line as it lands
                fh.write(line)
                if "::" in line and any(word in line for word in ("PASSED", "FAILED", "ERROR")):
                    print(f"    {line.strip()}", flush=True)
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
        return Outcome(name, f"killed ({signal.Signals(-code).name})", seconds, log)
    return Outcome(name, f"failed (exit {code}): {_last_error(log)}", seconds, log)


def _last_error(log: Path) -> str:
    """The most telling line of a failed run's log, for the summary."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if "error" in line.lower() or line.startswith(("E ", "FAILED", "kerasbench:", "!!!")):
            return line[:200]
    return lines[-1][:200] if lines else "no output"


def default_run_dir(results_dir: Path) -> Path:
    return results_dir / "runs" / datetime.now().strftime("%Y%m%dT%H%M%S")


def summary(outcomes: list[Outcome]) -> str:
    lines = ["| backend | status | wall s |", "|---|---|---:|"]
    for o in outcomes:
        lines.append(f"| {o.backend} | {o.status} | {o.seconds:.0f} |")
    return "\n".join(lines) + "\n"
