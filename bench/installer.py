"""What builds environments: uv (``UvInstaller``), behind the small interface ``bench.environments`` uses,
and the one reader of uv's failures (``explain``), which turns them into what a person can act on: a
version that does not exist with the nearest releases, an unreachable index with every source tried.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from bench import index as package_index
from bench.packages import normalize


class UvNotFound(RuntimeError):
    """Neither the pinned uv package nor a uv on PATH."""


class InstallFailed(Exception):
    """An installer command failed; ``output`` is what it printed."""

    def __init__(self, command: Sequence[str], output: str) -> None:
        super().__init__(f"{' '.join(command[:4])} ... failed")
        self.command = list(command)
        self.output = output


class Installer(Protocol):
    """What builds environments (``UvInstaller``; tests pass a fake one). Each method raises InstallFailed."""

    def overlay(self, target: Path, packages: Sequence[str], python: str,
                index: package_index.IndexConfig) -> None: ...

    def create_venv(self, folder: Path, python: str) -> None: ...

    def install(self, python: Path, requirements: Sequence[str], constraints: Path, overrides: Path,
                index: package_index.IndexConfig) -> None: ...

    def freeze(self, python: Path) -> list[str]: ...


def uv_binary() -> str:
    """The uv pinned as this project's dependency, else one on PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise UvNotFound("uv is not installed: `pip install -c constraints.txt uv` (a pinned dependency of "
                             "kerasbench)") from None
        return found


class UvInstaller:
    """Builds environments with uv."""

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or uv_binary()

    def _run(self, *args: str) -> str:
        command = [self.binary, *args]
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise InstallFailed(command, done.stderr + done.stdout)
        return done.stdout

    def overlay(self, target: Path, packages: Sequence[str], python: str,
                index: package_index.IndexConfig) -> None:
        # --python only picks the wheel tags; --target keeps every file out of that interpreter's venv.
        # --compile-bytecode as pip does: where PYTHONDONTWRITEBYTECODE is set, every process would recompile.
        self._run("pip", "install", "--quiet", "--no-deps", "--compile-bytecode", "--target", str(target),
                  "--python", python,
                  *index.uv_args(), *packages)

    def create_venv(self, folder: Path, python: str) -> None:
        self._run("venv", "--quiet", "--python", python, str(folder))

    def install(self, python: Path, requirements: Sequence[str], constraints: Path, overrides: Path,
                index: package_index.IndexConfig) -> None:
        self._run("pip", "install", "--quiet", "--compile-bytecode", "--python", str(python),
                  "--constraint", str(constraints),
                  "--overrides", str(overrides), *index.uv_args(), *requirements)

    def freeze(self, python: Path) -> list[str]:
        out = self._run("pip", "freeze", "--python", str(python))
        return sorted(f"{normalize(n)}=={v}" for n, _, v in (line.partition("==") for line in out.splitlines())
                      if v)


# ------------------------------------------------------------------------------------------ errors

NO_VERSION = re.compile(r"no versions? of ([A-Za-z0-9][A-Za-z0-9._-]*)\s*={2,3}\s*([^\s,;]+)", re.I)
OFFLINE = re.compile(r"failed to fetch|error sending request|dns error|failed to lookup address|connection refused|"
                     r"network is unreachable|could not connect|timed out|tcp connect error|offline", re.I)


def explain(output: str, what: Sequence[str], index: package_index.IndexConfig) -> str:
    """Why an install failed: a missing version with the nearest releases, an unreachable index, or uv's words."""
    asked = " ".join(what)
    missing = NO_VERSION.search(output)
    if missing:
        name, version = missing.group(1), missing.group(2).rstrip(".`'\"")
        try:
            available = package_index.releases(name, index)
        except package_index.IndexUnreachable as exc:
            return f"{name} {version} is not on the package index ({index.tried()}); {exc}"
        near = package_index.nearest(version, [v for v in available if not v.is_prerelease] or available)
        if not available:
            return f"{name} has no release on {index.tried()}"
        return (f"{name} {version} is not a release on {index.tried()}; nearest releases: "
                f"{', '.join(map(str, near))}")
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    offline = next((line for line in lines if OFFLINE.search(line)), None)
    if offline:
        return (f"cannot reach the package index to install {asked}: tried {index.tried()} (uv: {offline[:300]}). "
                "Offline? Point pip's or uv's configuration at a reachable index, or at a folder of wheels "
                "(find-links).")
    said = " ".join(line for line in lines if not line.startswith(("Using ", "Resolved ", "Prepared ")))[:600]
    return f"uv could not install {asked}: {said or 'no output'}"
