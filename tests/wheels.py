"""Tiny real wheels for a local find-links folder: what tests install with uv, offline, to plant a known change."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def make_wheel(folder: Path, name: str, version: str, modules: dict[str, str] | None = None,
               requires: tuple[str, ...] = (), pure: bool = True) -> Path:
    """``folder/<name>-<version>-py3-none-any.whl`` holding ``modules`` ({"pkg/__init__.py": source})."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name.replace('-', '_')}-{version}.dist-info"
    files = dict(modules or {f"{name.replace('-', '_')}/__init__.py": f'VERSION = "{version}"\n'})
    files[f"{dist}/METADATA"] = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                                         *(f"Requires-Dist: {r}\n" for r in requires)])
    files[f"{dist}/WHEEL"] = (f"Wheel-Version: 1.0\nGenerator: kerasbench-tests\nRoot-Is-Purelib: "
                              f"{'true' if pure else 'false'}\nTag: py3-none-any\n")
    record = [f"{path},sha256={_digest(text)},{len(text.encode())}" for path, text in files.items()]
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    path = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for inside, text in files.items():
            archive.writestr(inside, text)
    return path


def _digest(text: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
