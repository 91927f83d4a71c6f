"""A side's interpreter and package set: the project's venv, an overlay in front of it, or a full environment.

What a side asks for (a ``Request``: pins such as ``keras==3.12.0``, and/or a constraints file) is
planned against the venv this command runs in (``plan``), then prepared (``prepare``):

* **project**: nothing differs from the venv; the side's processes run as they always did.
* **overlay**: only pure-Python packages differ (a Keras release). They are installed with
  ``uv pip install --no-deps --target`` into a cached folder put in front of the venv through
  PYTHONPATH: a second or two, and the backends are not downloaded again. A dependency the venv
  lacks, or holds at a version the package refuses, is added to the overlay the same way when it
  is pure Python too.
* **full**: a compiled package differs (jax/jaxlib, tensorflow, torch, numpy), or an overlay cannot
  hold the change (a wheel with compiled code, a compiled dependency at another version). uv builds
  a virtual environment from a constraints file (the side's, else the project's ``constraints.txt``)
  plus the asked pins as overrides, with the project's dependencies and the backends' extras.

Both are cached under ``cache_dir()`` ($KERASBENCH_ENV_CACHE, else ``~/.cache/kerasbench/environments``
or the platform's user cache folder), one folder per hash of what was asked (with the interpreter
and the index configuration), and reused. A folder is complete only once its marker is written,
last; a folder without one (an interrupted build) or with missing files is rebuilt. A lock per
folder makes a second command that asks for the same environment wait for the first, then reuse
it. Nothing is ever installed into the project's venv: overlays go to ``--target`` folders, full
environments get their own interpreter. pip's index configuration is honoured (``bench.index``).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from bench import index as package_index
from bench.installer import Installer, InstallFailed, UvInstaller, UvNotFound, explain
from bench.packages import installed, normalize, versions
from bench.results import ENVIRONMENT_ENV

CACHE_ENV = "KERASBENCH_ENV_CACHE"
MARKER = ".complete"  # written last: a folder without it was interrupted mid-build
RECORD = "environment.json"
BACKEND_EXTRAS = ("tensorflow", "jax", "torch")  # pyproject's extras, one per backend
# Packages that carry compiled code or must match a compiled partner (jax is a pure wheel tied to
# jaxlib's version): a change to one of them needs a full environment. Anything else is tried as an
# overlay, and moved to a full environment when its wheel turns out to hold compiled code.
COMPILED = frozenset({"jax", "jaxlib", "tensorflow", "tensorflow-cpu", "tensorflow-intel", "tf-nightly", "torch",
                      "numpy", "ml-dtypes", "scipy", "h5py", "optree", "grpcio", "protobuf"})
# Overriding one of these leaves the other unconstrained, so the resolver picks the release that
# matches: jax X needs jaxlib X, and a constraints file pins both.
COMPANIONS = {"jax": ("jaxlib",), "jaxlib": ("jax",)}
OVERLAY_ROUNDS = 5  # dependency rounds an overlay may take before it is called unresolvable


class EnvironmentFailed(Exception):
    """An environment could not be planned or built; the message says why and what to try."""


# --------------------------------------------------------------------------------------- requests

@dataclass(frozen=True)
class Request:
    """What a side asks for over the project's venv."""

    packages: tuple[str, ...] = ()  # requirement strings, e.g. "keras==3.12.0"; overrides in a full environment
    constraints: str | None = None  # a constraints file's text: the side's pinned set; None: the venv as it is
    constraints_from: str = ""  # where that text came from, for people
    backends: tuple[str, ...] = BACKEND_EXTRAS  # the backends a full environment must hold

    @classmethod
    def parse(cls, packages: str | Sequence[str] = "", constraints: str | os.PathLike | None = None,
              backends: Sequence[str] = BACKEND_EXTRAS) -> Request:
        """From options: ``"keras==3.14.1 jax==0.10.1"`` and a constraints file's path."""
        specs = packages.split() if isinstance(packages, str) else list(packages)
        for spec in specs:
            requirement(spec)
        text = None
        if constraints is not None:
            try:
                text = Path(constraints).read_text(encoding="utf-8")
            except OSError as exc:
                raise EnvironmentFailed(f"cannot read constraints file {constraints}: {exc.strerror or exc}") from None
        return cls(tuple(specs), text, str(constraints) if constraints is not None else "", tuple(backends))

    @property
    def empty(self) -> bool:
        return not self.packages and self.constraints is None


def requirement(spec: str) -> Requirement:
    try:
        return Requirement(spec)
    except InvalidRequirement as exc:
        raise EnvironmentFailed(f"{spec!r} is not a package requirement (e.g. keras==3.12.0): {exc}") from None


def pins(text: str) -> dict[str, str]:
    """The requirement lines of a constraints file, by normalized name (comments, options and blanks skipped)."""
    found = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            found[normalize(Requirement(line).name)] = line
        except InvalidRequirement:
            continue
    return found


@dataclass(frozen=True)
class Plan:
    """What ``prepare`` will build: the kind, and the requirement strings that differ from the venv."""

    kind: str  # "project", "overlay" or "full"
    packages: tuple[str, ...] = ()  # overlay: what goes into it; full: the overrides
    constraints: str | None = None  # full: the base set
    constraints_from: str = ""
    backends: tuple[str, ...] = BACKEND_EXTRAS
    why: str = ""  # full: why not an overlay


def plan(request: Request, base: Sequence[str] | None = None, project_constraints: str = "",
         project_constraints_from: str = "constraints.txt") -> Plan:
    """Which kind of environment ``request`` needs over ``base`` (the venv's ``name==version`` set).

    A pin the venv already satisfies is dropped; with a constraints file, its pins that differ from
    the venv are what differs (those of packages the venv lacks constrain nothing, and are skipped).
    ``project_constraints`` is the base set of a full environment when the request names none.
    """
    base_versions = versions(installed() if base is None else base)
    wanted: dict[str, tuple[str, bool]] = {}  # name -> (requirement, asked for by name)
    if request.constraints is not None:
        wanted.update({name: (line, False) for name, line in pins(request.constraints).items()})
    for spec in request.packages:
        wanted[normalize(requirement(spec).name)] = (spec, True)
    differing = []
    for name, (spec, asked) in wanted.items():
        have = base_versions.get(name)
        if have is None and not asked:
            continue
        if have is None or not _satisfied(requirement(spec), have):
            differing.append(spec)
    if not differing:
        return Plan("project")
    compiled = sorted({normalize(requirement(s).name) for s in differing} & COMPILED)
    if not compiled:
        return Plan("overlay", tuple(differing), backends=request.backends)
    return full_plan(request, tuple(differing), project_constraints, project_constraints_from,
                     f"{', '.join(compiled)} carries compiled code")


def full_plan(request: Request, differing: Sequence[str], project_constraints: str, project_constraints_from: str,
              why: str) -> Plan:
    """A full environment: the request's constraints file (else the project's) with the asked pins as overrides."""
    if request.constraints is not None:
        return Plan("full", tuple(request.packages), request.constraints, request.constraints_from,
                    request.backends, why)
    return Plan("full", tuple(differing), project_constraints, project_constraints_from, request.backends, why)


def _satisfied(req: Requirement, version: str) -> bool:
    if not req.specifier:
        return True
    try:
        return req.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


# ----------------------------------------------------------------------------------- environments

@dataclass(frozen=True)
class Environment:
    """A prepared interpreter and package set: how a side's processes are started."""

    kind: str  # "project", "overlay", "full", or "venv" (one the user built and names: the GPU set's)
    id: str  # "project", the hash of what was asked (the cache folder's name), or a venv's interpreter
    python: str  # the interpreter to start
    paths: tuple[str, ...] = ()  # put in front of PYTHONPATH (an overlay's folder)
    packages: tuple[str, ...] = ()  # what differs from the project venv, as asked
    folder: Path | None = None
    resolved: tuple[str, ...] = ()  # name==version of what the build installed (overlay: its own packages)
    built_s: float | None = None  # seconds the build took; None when reused from the cache
    prepare_s: float = 0.0  # seconds ``prepare`` took, building or not

    @property
    def own_interpreter(self) -> bool:
        """Whether its processes start with an interpreter of their own (which answers for its own packages)."""
        return self.kind in ("full", "venv")

    @property
    def label(self) -> str:
        """'project venv', 'overlay 1a2b3c4d5e6f7a8b: keras==3.12.0': how results and logs name it."""
        if self.kind == "project":
            return "project venv"
        if self.kind == "venv":
            return f"venv {self.python}"
        return f"{self.kind} {self.id}: {' '.join(self.packages) or '(constraints)'}"

    def variables(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` (an environment) with this environment's PYTHONPATH in front and its label recorded."""
        env = dict(base)
        if self.paths:
            env["PYTHONPATH"] = os.pathsep.join([*self.paths, *filter(None, [base.get("PYTHONPATH")])])
        if self.own_interpreter:
            env.pop("PYTHONHOME", None)
        env[ENVIRONMENT_ENV] = "" if self.kind == "project" else self.label
        return env


PROJECT = Environment("project", "project", sys.executable)


def venv(python: str) -> Environment:
    """An environment the user built and names by its interpreter (``--python BACKEND=PATH``), used as it is."""
    return Environment("venv", python, python) if python != sys.executable else PROJECT


def cache_dir() -> Path:
    """Where overlays and full environments are kept: $KERASBENCH_ENV_CACHE, else the user's cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser().resolve()
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "kerasbench" / "environments"


# ---------------------------------------------------------------------------------------- prepare

def prepare(request: Request, *, root: Path, installer: Installer | None = None,
            index: package_index.IndexConfig | None = None, cache: Path | None = None,
            python: str = sys.executable, base: Sequence[str] | None = None, log: bool = True) -> Environment:
    """The environment ``request`` asks for over this venv, built or reused from the cache.

    ``root`` is the checkout whose pyproject.toml and constraints.txt a full environment starts
    from. Raises ``EnvironmentFailed`` with the reason (a version that does not exist, with the
    nearest releases; an unreachable index, with what was tried; the resolver's message).
    """
    start = time.perf_counter()  # host wall time of resolving and installing: no device involved
    constraints_file = root / "constraints.txt"
    project_text = constraints_file.read_text(encoding="utf-8") if constraints_file.exists() else ""
    chosen = plan(request, base, project_text, str(constraints_file))
    if chosen.kind == "project":
        return PROJECT
    try:
        installer = installer or UvInstaller()
    except UvNotFound as exc:
        raise EnvironmentFailed(str(exc)) from None
    index = index or package_index.from_pip_config()
    cache = cache or cache_dir()
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if log else (lambda text: None)
    if chosen.kind == "overlay":
        try:
            env = _cached(cache, "overlay", _overlay_key(chosen, python, index), chosen.packages, say,
                          lambda folder: _build_overlay(folder, chosen.packages, python, index, installer, base))
        except _NeedsFull as exc:
            say(f"{' '.join(chosen.packages)}: an overlay cannot hold it ({exc}): building a full environment")
            chosen = full_plan(request, chosen.packages, project_text, str(constraints_file), str(exc))
    if chosen.kind == "full":
        requirements = project_requirements(root, chosen.backends)
        env = _cached(cache, "full", _full_key(chosen, requirements, python, index), chosen.packages, say,
                      lambda folder: _build_full(folder, chosen, requirements, python, index, installer))
    return dataclasses.replace(env, prepare_s=time.perf_counter() - start)


def _interpreter_key(python: str) -> dict:
    """What makes wheels fit an interpreter: its version and platform (this process stands for ``python``)."""
    return {"python": python, "version": platform.python_version(), "implementation": sys.implementation.name,
            "platform": sys.platform, "machine": platform.machine()}


def _hash(document: dict) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


def _overlay_key(chosen: Plan, python: str, index: package_index.IndexConfig) -> str:
    return _hash({"kind": "overlay", "packages": sorted(chosen.packages), "interpreter": _interpreter_key(python),
                  "index": index.key()})


def _full_key(chosen: Plan, requirements: Sequence[str], python: str, index: package_index.IndexConfig) -> str:
    return _hash({"kind": "full", "overrides": sorted(chosen.packages), "constraints": chosen.constraints or "",
                  "requirements": sorted(requirements), "interpreter": _interpreter_key(python),
                  "index": index.key()})


class _NeedsFull(Exception):
    """An overlay cannot hold this change (compiled code, a compiled dependency at another version)."""


@dataclass
class _Built:
    python: str
    paths: tuple[str, ...]
    resolved: list[str]
    extra: dict = field(default_factory=dict)


def _cached(cache: Path, kind: str, key: str, packages: Sequence[str], say, build) -> Environment:
    """The complete cache folder ``<kind>-<key>``, building it under its lock when missing or broken."""
    folder = cache / f"{kind}-{key}"
    what = f"{kind} environment {key} ({' '.join(packages) or 'constraints'})"
    with _locked(cache / f"{kind}-{key}.lock", what, say):
        problem = broken(folder, kind)
        if problem is None:
            record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
            return Environment(kind, key, record["python"], tuple(record["paths"]), tuple(packages), folder,
                               tuple(record["resolved"]))
        if folder.exists():
            say(f"{what}: broken cache entry ({problem}): rebuilding {folder}")
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        say(f"{what}: building in {folder}")
        start = time.perf_counter()  # host wall time of an install: no device involved
        try:
            built = build(folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # never leave a half-built folder to be mistaken for one
            raise
        seconds = time.perf_counter() - start
        record = {"kind": kind, "id": key, "packages": list(packages), "python": built.python,
                  "paths": list(built.paths), "resolved": built.resolved, "build_s": round(seconds, 3),
                  "built": datetime.now(timezone.utc).isoformat(), **built.extra}
        (folder / RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
        (folder / MARKER).write_text(record["built"] + "\n", encoding="utf-8")
        say(f"{what}: built in {seconds:.1f} s")
        return Environment(kind, key, built.python, built.paths, tuple(packages), folder, tuple(built.resolved),
                           built_s=seconds)


def broken(folder: Path, kind: str) -> str | None:
    """Why a cache folder cannot be used (missing, interrupted, damaged), or None when it is complete."""
    if not folder.exists():
        return "missing"
    if not (folder / MARKER).exists():
        return "no completion marker: a build was interrupted"
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
        python, paths, resolved = record["python"], record["paths"], record["resolved"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{RECORD} unreadable"
    if kind == "full" and not Path(python).exists():
        return f"its interpreter {python} is missing"
    for path in paths:
        if not Path(path).is_dir():
            return f"{path} is missing"
    if kind == "overlay":
        present = set(installed(paths))
        missing = [spec for spec in resolved if spec not in present]
        if missing:
            return f"{', '.join(missing)} missing from the overlay"
    return None


@contextmanager
def _locked(path: Path, what: str, say) -> Iterator[None]:
    """An exclusive lock on ``path`` for the duration: a second builder of the same folder waits, then reuses it.

    flock is released by the kernel when the holder dies, so a killed build leaves no stale lock
    (only a folder without its marker, which the next holder rebuilds).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"{what}: waiting for another command that is building it ({path})")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------------ builds

def _build_overlay(folder: Path, packages: Sequence[str], python: str, index: package_index.IndexConfig,
                   installer: Installer, base: Sequence[str] | None) -> _Built:
    """Install ``packages`` without dependencies into ``folder/site``; then the dependencies they need
    that the venv lacks or holds at a refused version, round by round, as long as each is pure Python."""
    site = folder / "site"
    site.mkdir()
    base_versions = versions(installed() if base is None else base)
    wanted = list(packages)
    for _ in range(OVERLAY_ROUNDS):
        _install(wanted, index, installer.overlay, site, wanted, python, index)
        # Compiled code the venv lacks is harmless in front of it (uv picked wheels for this interpreter);
        # a compiled copy of what the venv holds could break what was built against the venv's copy.
        impure = [name for name in _impure(site) if name in base_versions]
        if impure:
            raise _NeedsFull(f"{', '.join(impure)} would replace the venv's copy with compiled code")
        wanted = _unmet(site, base_versions)
        if not wanted:
            return _Built(python, (str(site),), installed([str(site)]))
        compiled = [spec for spec in wanted if normalize(requirement(spec).name) in COMPILED]
        if compiled:
            raise _NeedsFull(f"it needs {', '.join(compiled)}, which the venv holds at another version")
    raise _NeedsFull(f"its dependencies still unmet after {OVERLAY_ROUNDS} rounds: {', '.join(wanted)}")


def _impure(site: Path) -> list[str]:
    """The normalized names of the distributions in an overlay whose wheel is not pure Python (per its WHEEL file)."""
    found = []
    for wheel in sorted(site.glob("*.dist-info/WHEEL")):
        text = wheel.read_text(encoding="utf-8", errors="replace")
        pure = re.search(r"^Root-Is-Purelib:\s*true\s*$", text, re.M | re.I)
        tags = re.findall(r"^Tag:\s*(\S+)\s*$", text, re.M)
        if not pure or any(not tag.endswith("-none-any") for tag in tags):
            found.append(normalize(wheel.parent.name.removesuffix(".dist-info").rsplit("-", 1)[0]))
    return found


def _unmet(site: Path, base_versions: Mapping[str, str]) -> list[str]:
    """The requirements of the overlay's distributions that neither the overlay nor the venv satisfies."""
    import importlib.metadata

    overlay = {normalize(d.metadata["Name"]): d.version for d in importlib.metadata.distributions(path=[str(site)])}
    environment = default_environment()
    unmet = []
    for dist in importlib.metadata.distributions(path=[str(site)]):
        for line in dist.requires or ():
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({**environment, "extra": ""}):
                continue
            name = normalize(req.name)
            have = overlay.get(name, base_versions.get(name))
            if (have is None or not _satisfied(req, have)) and name not in overlay:
                unmet.append(f"{name}{req.specifier}")
    return sorted(set(unmet))


def _build_full(folder: Path, chosen: Plan, requirements: Sequence[str], python: str,
                index: package_index.IndexConfig, installer: Installer) -> _Built:
    """A virtual environment in ``folder/venv``: the requirements under the constraints, the pins as overrides."""
    venv = folder / "venv"
    _install(["a virtual environment"], index, installer.create_venv, venv, python)
    env_python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    overridden = {normalize(requirement(spec).name) for spec in chosen.packages}
    loosened = overridden | {c for name in overridden for c in COMPANIONS.get(name, ())}
    kept = [line for name, line in pins(chosen.constraints or "").items() if name not in loosened]
    constraints, overrides = folder / "constraints.txt", folder / "overrides.txt"
    constraints.write_text("\n".join(kept) + "\n", encoding="utf-8")
    overrides.write_text("\n".join(chosen.packages) + "\n", encoding="utf-8")
    _install(list(chosen.packages) or [chosen.constraints_from], index, installer.install, env_python, requirements,
             constraints, overrides, index)
    return _Built(str(env_python), (), installer.freeze(env_python),
                  {"constraints_from": chosen.constraints_from, "why": chosen.why})


def project_requirements(root: Path, backends: Sequence[str] = BACKEND_EXTRAS) -> list[str]:
    """The project's dependencies and its backends' extras, from ``root``'s pyproject.toml (not the project itself)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the installed project's metadata says the same
        return _requirements_from_metadata(backends)
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise EnvironmentFailed(f"cannot read the project's dependencies from {root / 'pyproject.toml'}: "
                                f"{exc}") from None
    name = normalize(project.get("name", ""))
    found = list(project.get("dependencies", []))
    for extra in backends:
        found += project.get("optional-dependencies", {}).get(extra, [])
    return [spec for spec in found if normalize(Requirement(spec).name) != name]


def _requirements_from_metadata(backends: Sequence[str]) -> list[str]:
    import importlib.metadata

    found = []
    for line in importlib.metadata.requires("kerasbench") or ():
        req = Requirement(line)
        extras = [extra for extra in backends if req.marker is not None and req.marker.evaluate({"extra": extra})]
        if req.marker is None or extras:
            found.append(str(req).split(";")[0].strip())
    return found


# ------------------------------------------------------------------------------------------ errors

def _install(what: Sequence[str], index: package_index.IndexConfig, step, *args: object) -> None:
    """``step(*args)``, an installer's method; its failure becomes a message a person can act on."""
    try:
        step(*args)
    except InstallFailed as exc:
        raise EnvironmentFailed(explain(exc.output, what, index)) from None


