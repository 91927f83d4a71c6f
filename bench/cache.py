"""Small JSON files of what is measured once per machine and versions, and then reused: the machine's
ceilings (bench/ceilings.py) and each backend's count of a step (``Adapter.count_step``).

Files live under ``$KERASBENCH_CACHE`` (default ``~/.cache/kerasbench``), in a folder per kind, named by
the key. One that cannot be read is measured again; each is written to a file of its own first and
then renamed, so two processes measuring at once never leave half a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from bench.data import default_cache_dir


def cached(kind: str, key: str, compute: Callable[[], dict], cache_dir: Path | None = None,
           keep: Callable[[dict], bool] = lambda value: True) -> dict:
    """The stored dict for ``kind``/``key``, else ``compute()``, stored where ``keep(value)`` (a failure to
    measure is not kept: the next process tries again)."""
    path = (cache_dir or default_cache_dir()) / kind / f"{key}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    value = compute()
    if not keep(value):
        return value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)
    return value
