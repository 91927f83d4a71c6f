"""Which CUDA libraries this process loaded, of which CUDA major, and whether that is the backend's own.

TensorFlow 2.21 is built for CUDA 12; JAX's CUDA 13 plugin and PyPI's torch 2.13 for CUDA 13. The two majors'
cuDNN and NCCL wheels (nvidia-cudnn-cu12 / -cu13, nvidia-nccl-cu12 / -cu13) write the same files
(nvidia/cudnn/lib/libcudnn.so.9, nvidia/nccl/lib/libnccl.so.2), so in one environment the last install wins and
one backend loads the other major's library. Read from the process itself: the files mapped in /proc/self/maps,
and for each the CUDA major the library says it was built for (cuDNN's ``cudnnGetCudartVersion``, NCCL's version
string, the soname of cudart and cuBLAS), never from the file's name alone, which both majors share. No GPU is
needed: ``python -m bench cuda-libs`` asks each backend to load what it loads before it looks for a GPU.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import mmap
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

# The libraries compared; cuDNN and NCCL must be loaded (they are what the two majors' wheels share).
KINDS = {"cudnn": re.compile(r"/libcudnn\.so\.\d+$"), "nccl": re.compile(r"/libnccl\.so\.\d+$"),
         "cudart": re.compile(r"/libcudart\.so\.(\d+)$"), "cublas": re.compile(r"/libcublas\.so\.(\d+)$")}
REQUIRED = ("cudnn", "nccl")
_NCCL_BUILD = re.compile(rb"NCCL version [0-9.]+\+cuda(\d+)\.(\d+)")


@dataclass(frozen=True)
class Library:
    """One CUDA library mapped into the process."""

    kind: str  # a key of KINDS
    path: str
    cuda_major: int | None  # None: the library did not say
    how: str  # how the major was read, e.g. "cudnnGetCudartVersion() = 13020"
    owners: tuple[str, ...] = ()  # the distributions whose RECORD lists the file (two: a collision)


def mapped_files(maps: str) -> list[str]:
    """The files in a /proc/<pid>/maps text, in order, each once."""
    seen: dict[str, None] = {}
    for line in maps.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith("/"):
            seen.setdefault(parts[5].removesuffix(" (deleted)"), None)
    return list(seen)


def kind_of(path: str) -> str | None:
    return next((kind for kind, pattern in KINDS.items() if pattern.search(path)), None)


def cuda_major_of(kind: str, path: str) -> tuple[int | None, str]:
    """The CUDA major the library at ``path`` was built for, and how that was read."""
    if kind in ("cudart", "cublas"):  # their soname carries the major: libcudart.so.12, libcublas.so.13
        major = int(KINDS[kind].search(path).group(1))
        return major, f"soname {Path(path).name}"
    if kind == "cudnn":
        try:
            lib = ctypes.CDLL(path)  # already mapped: the same handle, nothing runs
            lib.cudnnGetCudartVersion.restype = ctypes.c_size_t
            lib.cudnnGetVersion.restype = ctypes.c_size_t
            cudart, version = lib.cudnnGetCudartVersion(), lib.cudnnGetVersion()
        except (OSError, AttributeError) as exc:
            return None, f"cudnnGetCudartVersion() not callable ({exc})"
        return cudart // 1000, f"cuDNN {version}, cudnnGetCudartVersion() = {cudart}"
    if kind == "nccl":
        try:
            with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                found = _NCCL_BUILD.search(data)
                text = found.group(0).decode() if found else ""
        except (OSError, ValueError) as exc:
            return None, f"unreadable ({exc})"
        if not text:
            return None, "no 'NCCL version ...+cudaNN' string in the file"
        return int(_NCCL_BUILD.search(text.encode()).group(1)), f"build string {text!r}"
    return None, "not a library this check reads"


def owners(paths: Iterable[str], distributions: Iterable[importlib.metadata.Distribution] | None = None,
           ) -> dict[str, tuple[str, ...]]:
    """For each of ``paths`` (as mapped), the installed distributions whose RECORD lists it."""
    wanted = {os.path.realpath(p): p for p in paths}
    found: dict[str, list[str]] = defaultdict(list)
    for dist in _cuda_distributions(distributions):
        for file in dist.files or ():
            real = os.path.realpath(dist.locate_file(file))
            if real in wanted:
                found[wanted[real]].append(f"{dist.metadata['Name']} {dist.version}")
    return {p: tuple(sorted(found.get(p, ()))) for p in wanted.values()}


def shared_files(distributions: Iterable[importlib.metadata.Distribution] | None = None) -> dict[str, list[str]]:
    """Files that more than one installed distribution wrote (the same path in two RECORDs): the last one won."""
    writers: dict[str, list[str]] = defaultdict(list)
    for dist in _cuda_distributions(distributions):
        for file in dist.files or ():
            if not file.name.endswith((".pyc", ".py")) and "dist-info" not in str(file):
                writers[str(file)].append(dist.metadata["Name"])
    return {path: sorted(names) for path, names in sorted(writers.items()) if len(set(names)) > 1}


def _cuda_distributions(distributions: Iterable[importlib.metadata.Distribution] | None):
    """The distributions that ship CUDA libraries (nvidia-*, cuda-*): where both majors' files live."""
    for dist in importlib.metadata.distributions() if distributions is None else distributions:
        name = (dist.metadata["Name"] or "").lower()
        if name.startswith(("nvidia-", "cuda-")) and name != "nvidia-ml-py":
            yield dist


def loaded(maps: str | None = None) -> list[Library]:
    """The CUDA libraries mapped into this process (``maps``: a /proc/self/maps text, read when None)."""
    if maps is None:
        maps = Path("/proc/self/maps").read_text()
    files = [(kind_of(path), path) for path in mapped_files(maps)]
    files = [(kind, path) for kind, path in files if kind is not None]
    who = owners(path for _, path in files)
    return [Library(kind, path, *cuda_major_of(kind, path), owners=who[path]) for kind, path in files]


@dataclass(frozen=True)
class Report:
    """One backend's process: the CUDA major it was built for, what it loaded, and what is wrong."""

    backend: str
    build: str  # e.g. "torch 2.13.0 built with CUDA 13.0"
    cuda_major: int | None  # None: a CPU build
    how_loaded: str  # what made the backend load its libraries without a GPU
    libraries: tuple[Library, ...]
    shared: Mapping[str, list[str]]  # files two distributions of this environment wrote
    python: str
    error: str = ""  # why the backend's process gave no report (then nothing else is known)

    @property
    def problems(self) -> list[str]:
        return problems(self)

    def as_dict(self) -> dict:
        return {**asdict(self), "libraries": [asdict(lib) for lib in self.libraries], "shared": dict(self.shared)}

    @classmethod
    def from_dict(cls, data: Mapping) -> Report:
        libraries = tuple(Library(**{**lib, "owners": tuple(lib["owners"])}) for lib in data["libraries"])
        return cls(**{**data, "libraries": libraries})


def problems(report: Report) -> list[str]:
    """What makes this backend's CUDA libraries wrong: a CPU build, the other major's library, one not loaded."""
    name = report.backend
    if report.error:
        return [f"{name} could not be checked: {report.error}"]
    if report.cuda_major is None:
        return [f"{name} is not a CUDA build ({report.build}): it would run on the CPU only"]
    found = []
    for lib in report.libraries:
        if lib.cuda_major is not None and lib.cuda_major != report.cuda_major:
            by = f" (written by {', '.join(lib.owners)})" if lib.owners else ""
            found.append(f"{name} is built for CUDA {report.cuda_major} but loaded {lib.path}, a CUDA "
                         f"{lib.cuda_major} {lib.kind} ({lib.how}){by}")
    for kind in REQUIRED:
        if not any(lib.kind == kind for lib in report.libraries):
            found.append(f"{name} loaded no {kind} library ({report.how_loaded})")
    for path, names in report.shared.items():
        if any(lib.path.endswith(path) for lib in report.libraries):
            found.append(f"{path} was written by {' and '.join(names)}: the last install won")
    return found


def render(reports: Iterable[Report]) -> str:
    """What each backend loaded, with each library's major and owner, and a verdict per backend."""
    out = []
    for report in reports:
        if report.error:
            out += [f"{report.backend}: could not be checked ({report.python}):", f"  {report.error}"]
            continue
        major = "a CPU build" if report.cuda_major is None else f"CUDA {report.cuda_major}"
        out.append(f"{report.backend}: {report.build}: {major} ({report.python})")
        out.append(f"  how: {report.how_loaded}")
        for lib in report.libraries:
            seen = "?" if lib.cuda_major is None else str(lib.cuda_major)
            out.append(f"  {lib.kind:<6} CUDA {seen:<2} {lib.path}")
            out.append(f"         {lib.how}; from {', '.join(lib.owners) or 'no installed distribution'}")
        shared = len(report.shared)
        out.append(f"  files written by two distributions in this environment: {shared or 'none'}")
        trouble = report.problems
        out += [f"  REFUSED: {line}" for line in trouble] or [
            f"  ok: cuDNN and NCCL of CUDA {report.cuda_major}, as {report.backend} is built for"]
    return "\n".join(out)


def refusal(reports: Iterable[Report], install: str) -> str | None:
    """The one paragraph that stops `make venv-gpu` or `make gpu-check`, or None when every backend is right."""
    trouble = [line for report in reports for line in report.problems]
    if not trouble:
        return None
    return (f"kerasbench cuda-libs: {'; '.join(trouble)}. One environment per CUDA major keeps each backend on its "
            f"own libraries: {install}.")
