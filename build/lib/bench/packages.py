"""The exact package set of a process: every installed distribution as name==version, its id, and differences.

Every result file records the set of the process that wrote it (``results.PackageSet``), so that
two sides, cells or runs can say which packages differ between them, down to a dependency nobody
pinned. The set is what this interpreter would import: where an overlay (``bench.environments``)
puts a second copy of a package in front of the venv, the copy that comes first on ``sys.path``
counts, as it does for ``import``. This module reads only ``importlib.metadata``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import re
from collections.abc import Iterable, Sequence

from bench.results import PackageSet

PROJECT_SOURCE = "project venv"


def normalize(name: str) -> str:
    """PEP 503's normalized name: 'Tensorflow_CPU' -> 'tensorflow-cpu', so that spellings compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(path: Sequence[str] | None = None) -> list[str]:
    """``name==version`` of every distribution on ``path`` (default ``sys.path``), sorted; the first copy wins."""
    found: dict[str, str] = {}
    distributions = importlib.metadata.distributions(**({} if path is None else {"path": list(path)}))
    for dist in distributions:
        name = dist.metadata["Name"] if dist.metadata else None
        if name and normalize(name) not in found:
            found[normalize(name)] = f"{normalize(name)}=={dist.version}"
    return sorted(found.values())


def versions(specs: Iterable[str]) -> dict[str, str]:
    """``["keras==3.12.0", ...]`` -> ``{"keras": "3.12.0", ...}`` (names normalized)."""
    found = {}
    for spec in specs:
        name, _, version = spec.partition("==")
        found[normalize(name)] = version
    return found


def set_id(specs: Iterable[str]) -> str:
    """A short hash of a package set: two processes share it exactly when their sets are the same."""
    return hashlib.sha256("\n".join(sorted(specs)).encode()).hexdigest()[:16]


@functools.cache
def current(source: str = "") -> PackageSet:
    """This process's package set, with how its environment was made (``source``; "" means the project venv).

    Cached: the set does not change while a benchmark process runs, and the result file is rewritten
    after every benchmark.
    """
    specs = installed()
    return PackageSet(id=set_id(specs), installed=specs, source=source or PROJECT_SOURCE)


def differences(before: Sequence[str], after: Sequence[str]) -> list[str]:
    """What changed from one package set to another: ``["keras 3.12.0 → 3.15.1", "+rich 14.0.0", "-dm-tree 0.1.8"]``."""
    old, new = versions(before), versions(after)
    changed = [f"{name} {old[name]} → {new[name]}" for name in sorted(old.keys() & new.keys())
               if old[name] != new[name]]
    added = [f"+{name} {new[name]}" for name in sorted(new.keys() - old.keys())]
    removed = [f"-{name} {old[name]}" for name in sorted(old.keys() - new.keys())]
    return changed + added + removed
