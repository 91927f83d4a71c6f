"""Helpers shared by the harness's tests: the checkout's root, running a command, seeded Hypothesis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]

# Every property test draws the same examples on every run: a red CI is a bug, never the dice.
settings.register_profile("kerasbench", derandomize=True, deadline=None)
settings.load_profile("kerasbench")


def run_python(*args: str, cwd: Path = ROOT, env: dict | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """``python ARGS`` with this interpreter, output captured; ``env`` adds to the current environment."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def run_bench(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``pytest bench/ ARGS`` in a fresh process (Keras fixes its backend per process)."""
    return run_python("-m", "pytest", "bench/", "-q", *args, env=env, timeout=timeout)


def run_cli(*args: str, cwd: Path = ROOT, env: dict | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m bench ARGS``."""
    return run_python("-m", "bench", *args, cwd=cwd, env=env, timeout=timeout)


@pytest.fixture
def backend_name() -> str:
    from bench.backends import selected_backend

    return selected_backend()


# `make test` runs the tests marked per_backend once under each backend, and the rest once: Keras fixes its
# backend per process, and most of the harness (statistics, reports, options) does not depend on it.
BACKEND_FIXTURES = frozenset({"adapter", "backend_name", "model", "default_model"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "per_backend: depends on the Keras backend; `make test` runs it under each")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test that takes a backend's fixture but would run under one backend only is a mistake, not a choice.
    unmarked = [item.nodeid for item in items if BACKEND_FIXTURES & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("per_backend") is None]
    if unmarked:
        raise pytest.UsageError("mark these tests per_backend (they use a backend's fixtures): " + ", ".join(unmarked))
