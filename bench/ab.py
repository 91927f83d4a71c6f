"""``python -m bench ab BASE HEAD``: two commits measured on one machine in one sitting, then gated.

Comparing a run with results measured elsewhere, or an hour earlier, gates on the machine and its
drift. Here both commits are checked out as git worktrees (in a temporary folder, removed after),
and the runner runs them interleaved: base, head, then head, base, ... per backend (the sides take
turns going first), each process with its own worktree's code (``pytest bench/`` started in that
worktree). Both sides use this interpreter and its installed packages: a dependency change
between the commits is not what ``ab`` measures. Results and logs go to ``<run dir>/base`` and
``<run dir>/head``; the comparison (``bench.compare``: at least 3 processes a side to gate) is
printed and written to ``<run dir>/COMPARE.md``. The CI workflow runs this same command.

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

from bench import runner
from bench.fingerprint import describe
from bench.results import Result
from bench.selection import measured_on

SIDES = ("base", "head")
WORKING_TREE = "."  # the ref for the checkout as it is, uncommitted changes included
COMPARE_FILE = "COMPARE.md"  # the verdict, beside both sides' results


class RefError(ValueError):
    """A ref that git cannot resolve to a commit, or a folder that is not a git checkout."""


@dataclass
class AbRun:
    base: str  # what was measured: a full commit hash, or "working tree at <hash>"
    head: str
    outcomes: list[runner.Outcome]
    run_dir: Path
    run_ids: dict[str, str]  # per side

    def side(self, name: str) -> Path:
        return self.run_dir / name


def as_one_run(found: Sequence[Result], run_id: str) -> list[Result]:
    """A side's results as the one run they are, even where an older commit's code recorded no run id."""
    return [r if r.run.run_id else dataclasses.replace(r, run=dataclasses.replace(r.run, run_id=run_id))
            for r in found]


def compare_header(done: AbRun, base_ref: str, head_ref: str, *, base_args: Sequence[str], head_args: Sequence[str],
                   repeat: int, head: Sequence[Result]) -> str:
    """COMPARE.md's opening: the commits (hashes shortened), each side's own options, and the machine."""
    short = lambda text: re.sub(r"\b([0-9a-f]{12})[0-9a-f]{28}\b", r"\1", text)
    header = f"# ab: base {short(done.base)} ({base_ref}) vs head {short(done.head)} ({head_ref})\n\n"
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
           run_dir: Path, base_args: Sequence[str] = (), head_args: Sequence[str] = ()) -> AbRun:
    """Check out both refs as worktrees, run them interleaved, remove the worktrees; returns what ran."""
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
        sides = [runner.Side(name, trees[name], run_dir / name, runner.new_run_id(), extra[name]) for name in SIDES]
        print(f"ab: base {commits['base']} ({base_ref}), head {commits['head']} ({head_ref}), {repeat} process(es) "
              f"per side per backend, interleaved", flush=True)
        outcomes = runner.run_interleaved(backends, pytest_args, sides, repeat, run_dir)
    finally:
        for name, tree in trees.items():
            if refs[name] != WORKING_TREE and tree.exists():
                _git(repo, "worktree", "remove", "--force", str(tree), check=False)
        _git(repo, "worktree", "prune", check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    return AbRun(commits["base"], commits["head"], outcomes, run_dir, {side.name: side.run_id for side in sides})


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RefError(f"git {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done
