"""``python -m bench ab BASE HEAD``: two commits measured on one machine in one sitting, then gated.

Comparing a run with results measured elsewhere, or an hour earlier, gates on the machine and its
drift. Here both commits are checked out as git worktrees (in a temporary folder, removed after),
and the runner runs them interleaved: base, head, then head, base, ... per backend (the sides take
turns going first), each process with its own worktree's code (``pytest bench/`` started in that
worktree) and its own environment (``bench.environments``). When the two commits' constraints.txt
differ, each side runs on its own pinned set: the pins that differ from this venv go into an
overlay (pure-Python packages such as Keras) or a full environment (compiled ones), so that a
dependency bump is measured as what it changes; ``--base-with`` / ``--head-with`` (pins) and
``--base-constraints`` / ``--head-constraints`` (a file) choose a side's set by hand. Results and
logs go to ``<run dir>/base`` and ``<run dir>/head``; the comparison (``bench.compare``: at least 3
processes a side to gate) is printed and written to ``<run dir>/COMPARE.md``, which opens with the
version differences. The CI workflow runs this same command.

The ref ``.`` means the checkout itself as it is, uncommitted changes included (``ab main .``;
``ab . .`` is an A/A run of the working tree). ``base_args`` / ``head_args`` add benchmark options
to one side only: ``ab . . --head-args "--maxlen 220"`` measures a known slowdown, interleaved.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import environments, packages, runner
from bench.compare import package_header
from bench.fingerprint import describe
from bench.results import Result
from bench.selection import measured_on

SIDES = ("base", "head")
WORKING_TREE = "."  # the ref for the checkout as it is, uncommitted changes included
COMPARE_FILE = "COMPARE.md"  # the verdict, beside both sides' results
CONSTRAINTS = "constraints.txt"  # the pinned set a commit is tested with


class RefError(ValueError):
    """A ref that git cannot resolve to a commit, or a folder that is not a git checkout."""


@dataclass
class AbRun:
    base: str  # what was measured: a full commit hash, or "working tree at <hash>"
    head: str
    outcomes: list[runner.Outcome]
    run_dir: Path
    run_ids: dict[str, str]  # per side
    environments: dict[str, environments.Environment] = dataclasses.field(default_factory=dict)  # per side
    constraint_changes: list[str] = dataclasses.field(default_factory=list)  # base's constraints.txt -> head's

    def side(self, name: str) -> Path:
        return self.run_dir / name


@dataclass(frozen=True)
class SideEnvironment:
    """What one side asks for by hand: pins (--base-with) and a constraints file (--base-constraints)."""

    packages: tuple[str, ...] = ()
    constraints: Path | None = None


def side_requests(texts: dict[str, str], chosen: dict[str, SideEnvironment],
                  backends: Sequence[str]) -> dict[str, environments.Request]:
    """Each side's request: its own options, else (when the commits' constraints.txt differ) its commit's file.

    ``texts`` holds each side's constraints.txt as committed ("" where it has none).
    """
    differ = texts["base"] != texts["head"]
    requests = {}
    for name in SIDES:
        asked = chosen.get(name, SideEnvironment())
        request = environments.Request.parse(asked.packages, asked.constraints, backends)
        if asked.constraints is None and differ and texts[name]:
            request = dataclasses.replace(request, constraints=texts[name], constraints_from=f"{name}'s {CONSTRAINTS}")
        requests[name] = request
    return requests


def constraint_changes(before: str, after: str) -> list[str]:
    """What changed between two constraints files: ``["keras 3.14.1 → 3.15.1", "+rich 15.0.0"]``.

    Exact pins (``name==version``) read as versions; other lines are compared as written.
    """
    old, new = environments.pins(before), environments.pins(after)
    exact = {name: spec for side in (old, new) for name, spec in side.items() if _exact(spec)}
    changed = packages.differences([s.replace(" ", "") for s in old.values() if _exact(s)],
                                   [s.replace(" ", "") for s in new.values() if _exact(s)])
    for name in sorted((old.keys() | new.keys()) - exact.keys()):
        if old.get(name) != new.get(name):
            changed.append(f"{name}: {old.get(name, '(none)')} → {new.get(name, '(none)')}")
    return changed


def _exact(spec: str) -> bool:
    """Whether a requirement line is an exact pin, ``name==version`` (no marker, no other specifier)."""
    return re.fullmatch(r"[A-Za-z0-9._-]+\s*==\s*[^=;,\s]+", spec.strip()) is not None


def as_one_run(found: Sequence[Result], run_id: str) -> list[Result]:
    """A side's results as the one run they are, even where an older commit's code recorded no run id."""
    return [r if r.run.run_id else dataclasses.replace(r, run=dataclasses.replace(r.run, run_id=run_id))
            for r in found]


def compare_header(done: AbRun, base_ref: str, head_ref: str, *, base_args: Sequence[str], head_args: Sequence[str],
                   repeat: int, head: Sequence[Result], base: Sequence[Result] | None = None) -> str:
    """COMPARE.md's opening: the commits (hashes shortened), the version differences, each side's own
    options and environment, and the machine."""
    short = lambda text: re.sub(r"\b([0-9a-f]{12})[0-9a-f]{28}\b", r"\1", text)
    header = f"# ab: base {short(done.base)} ({base_ref}) vs head {short(done.head)} ({head_ref})\n\n"
    if done.constraint_changes:
        header += f"Versions: {CONSTRAINTS} differs between the commits: {', '.join(done.constraint_changes)}.\n\n"
    header += package_header(base or (), head)
    if any(env.kind != "project" for env in done.environments.values()):
        header += ("Environments: " + "; ".join(f"{name} {env.label}" for name, env in done.environments.items())
                   + ".\n\n")
    if base_args or head_args:
        sides = [f"{name} {shlex.join(extra) or '-'}" for name, extra in (("base", base_args), ("head", head_args))]
        header += f"Side options: {', '.join(sides)}.\n\n"
    header += f"Measured on {describe(measured_on(head) or {})}, interleaved, {repeat} process(es) a side.\n\n"
    return header


def resolve(repo: Path, ref: str) -> str:
    """The full commit hash of ``ref`` in ``repo``."""
    done = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise RefError(f"{ref!r} is not a commit in {repo}")
    return done.stdout.strip()


def run_ab(base_ref: str, head_ref: str, *, repo: Path, backends: list[str], pytest_args: list[str], repeat: int,
           run_dir: Path, base_args: Sequence[str] = (), head_args: Sequence[str] = (),
           chosen: dict[str, SideEnvironment] | None = None, prepare=environments.prepare) -> AbRun:
    """Check out both refs as worktrees, prepare each side's environment, run them interleaved, remove the
    worktrees; returns what ran. ``prepare(request, root=...)`` builds an environment (tests pass a fake).

    Raises ``RefError`` for a ref git cannot resolve and ``environments.EnvironmentFailed`` for a
    side whose environment cannot be built.
    """
    repo = repo.resolve()
    if _git(repo, "rev-parse", "--git-dir", check=False).returncode != 0:
        raise RefError(f"{repo} is not a git checkout")
    refs = dict(zip(SIDES, (base_ref, head_ref), strict=True))
    commits = {name: (f"working tree at {resolve(repo, 'HEAD')}" if ref == WORKING_TREE else resolve(repo, ref))
               for name, ref in refs.items()}
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="kerasbench-ab-"))
    trees = {name: repo if ref == WORKING_TREE else scratch / name for name, ref in refs.items()}
    try:
        for name, ref in refs.items():
            if ref != WORKING_TREE:
                _git(repo, "worktree", "add", "--detach", str(trees[name]), commits[name])
        extra = {"base": tuple(base_args), "head": tuple(head_args)}
        texts = {name: _constraints_text(trees[name]) for name in SIDES}
        requests = side_requests(texts, chosen or {}, backends)
        prepared = {name: prepare(request, root=trees[name]) for name, request in requests.items()}
        sides = [runner.Side(name, trees[name], run_dir / name, runner.new_run_id(), extra[name], prepared[name])
                 for name in SIDES]
        print(f"ab: base {commits['base']} ({base_ref}), head {commits['head']} ({head_ref}), {repeat} process(es) "
              f"per side per backend, interleaved", flush=True)
        for side in sides:
            print(f"ab: {side.name} runs on {side.environment.label}", flush=True)
        outcomes = runner.run_interleaved(backends, pytest_args, sides, repeat, run_dir)
    finally:
        for name, tree in trees.items():
            if refs[name] != WORKING_TREE and tree.exists():
                _git(repo, "worktree", "remove", "--force", str(tree), check=False)
        _git(repo, "worktree", "prune", check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    return AbRun(commits["base"], commits["head"], outcomes, run_dir, {side.name: side.run_id for side in sides},
                 prepared, constraint_changes(texts["base"], texts["head"]))


def _constraints_text(tree: Path) -> str:
    path = tree / CONSTRAINTS
    return path.read_text(encoding="utf-8") if path.exists() else ""


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RefError(f"git {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done
