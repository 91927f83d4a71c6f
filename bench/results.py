"""What a result file holds, where it goes, and how it is written (atomically, as it goes).

A result file is pytest-benchmark's own JSON (so ``pytest-benchmark compare`` and CI tools read
it) plus a ``kerasbench`` block: schema version, run settings, and whether the run finished.
It is rewritten after every benchmark, so a crash keeps everything measured before it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def result_path(results_dir: str | os.PathLike, label: str, profile: str, started: datetime) -> Path:
    """``results/<backend>-<device>-<profile>_<time>_<pid>.json``: runs never share a file."""
    stamp = started.strftime("%Y%m%dT%H%M%S")
    return Path(results_dir) / f"{label}-{profile}_{stamp}_{os.getpid()}.json"


def check_writable(results_dir: str | os.PathLike) -> None:
    """Fail before any benchmark runs if results cannot be written."""
    path = Path(results_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise OSError(
            f"cannot write results to {path}: {exc.strerror or exc}. Choose another folder with "
            "--results-dir or KERASBENCH_RESULTS."
        ) from None


def write_atomic(path: Path, document: dict) -> None:
    """Write a JSON document atomically (see ``write_text_atomic``)."""
    write_text_atomic(path, json.dumps(document, indent=2, default=_jsonable))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write to a temp file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are for everyone to read
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_block(*, backend: str, device: dict, settings: dict, started: datetime, finished: bool,
              exitstatus: int | None) -> dict:
    """The ``kerasbench`` block of a result file."""
    return {
        "schema_version": SCHEMA_VERSION,
        "backend": backend,
        **device,
        "settings": settings,
        "started": started.isoformat(),
        "updated": datetime.now(timezone.utc).isoformat(),
        "finished": finished,  # False while running, and forever if the run was killed
        "exitstatus": exitstatus,
        "argv": sys.argv,
    }


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # NumPy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
