"""Interleaved processes: ``bench run --repeat N`` and ``bench ab BASE HEAD`` (two commits, one sitting)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import ab, results, runner
from bench import environments as envs
from bench.selection import aggregate, latest
from tests.conftest import ROOT, run_cli
from tests.resultfiles import make_result, write_result

# A checkout whose "benchmarks" only write down the environment they ran in: the runner's plumbing
# (order, environment, working folder, logs) without a minute of Keras per process.
FAKE_CONFTEST = ('def pytest_addoption(parser):\n    parser.addoption("--results-dir")\n'
                 '    parser.addoption("--maxlen")\n')
FAKE_BENCHMARK = '''import json, os

def test_env(pytestconfig):
    keys = ("KERAS_BACKEND", "KERASBENCH_RUN_ID", "KERASBENCH_REPEAT_INDEX")
    with open(os.path.join(pytestconfig.getoption("results_dir"), "order.jsonl"), "a") as fh:
        fh.write(json.dumps({**{k: os.environ.get(k) for k in keys}, "cwd": os.getcwd(),
                             "maxlen": pytestconfig.getoption("maxlen")}) + "\\n")
'''


def fake_checkout(path):
    (path / "bench").mkdir(parents=True)
    (path / "conftest.py").write_text(FAKE_CONFTEST)
    (path / "bench" / "test_env.py").write_text(FAKE_BENCHMARK)
    return path


def test_repeats_interleave_backends_and_share_a_run_id(tmp_path):
    side = runner.Side("", fake_checkout(tmp_path / "code"), tmp_path / "out", "run-1", ("--maxlen", "220"))
    side.results.mkdir()
    outcomes = runner.run_interleaved(["jax", "torch"], ["--maxlen", "200"], [side], repeat=2,
                                      log_dir=tmp_path / "logs")
    assert [o.status for o in outcomes] == ["ok"] * 4
    assert [o.label for o in outcomes] == ["jax (1/2)", "torch (1/2)", "jax (2/2)", "torch (2/2)"]
    order = [json.loads(line) for line in (side.results / "order.jsonl").read_text().splitlines()]
    assert [(e["KERAS_BACKEND"], e["KERASBENCH_REPEAT_INDEX"]) for e in order] == [
        ("jax", "0"), ("torch", "0"), ("jax", "1"), ("torch", "1")]
    assert {e["KERASBENCH_RUN_ID"] for e in order} == {"run-1"} and {e["cwd"] for e in order} == {str(side.root)}
    assert {e["maxlen"] for e in order} == {"220"}  # a side's own options come last, and win
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["jax-1.log", "jax-2.log", "torch-1.log",
                                                                     "torch-2.log"]
    assert "| torch (2/2) | ok |" in runner.summary(outcomes)


def test_two_sides_take_turns_going_first(tmp_path):
    code = fake_checkout(tmp_path / "code")
    sides = [runner.Side(name, code, tmp_path / name, f"run-{name}", ()) for name in ("base", "head")]
    for side in sides:
        side.results.mkdir()
    outcomes = runner.run_interleaved(["jax"], [], sides, repeat=3, log_dir=tmp_path / "logs")
    assert [o.label for o in outcomes] == ["base jax (1/3)", "head jax (1/3)", "head jax (2/3)", "base jax (2/3)",
                                           "base jax (3/3)", "head jax (3/3)"]


def test_repeat_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        runner.run_interleaved(["jax"], [], [], repeat=0, log_dir=tmp_path)
    done = run_cli("run", "--repeat", "0", "--run-dir", str(tmp_path / "run"), timeout=60)
    assert done.returncode == 2 and "must be at least 1" in done.stderr and not (tmp_path / "run").exists()


def git(repo, *args):
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.name=kerasbench", "-c", "user.email=k@example.com",
                           *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def two_commits(tmp_path_factory):
    """A throwaway repository of this working tree (committed or not): commit A, then B touching the README."""
    repo = tmp_path_factory.mktemp("repo")
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "A")
    (repo / "README.md").write_text((repo / "README.md").read_text() + "\nB\n")
    git(repo, "commit", "-q", "-am", "B")
    return repo, git(repo, "rev-parse", "HEAD~1"), git(repo, "rev-parse", "HEAD")


# The ab plumbing does not depend on the backend, and each side is a real pytest process with Keras:
# one backend's test session runs it, to keep `make test` within its time budget.
def test_ab_runs_each_commit_with_its_own_code_interleaved_and_compares(tmp_path, two_commits):
    repo, base, head = two_commits
    run_dir = tmp_path / "ab"
    # HEAD~1 as a worktree; "." is the checkout itself as it is (here: clean, at B).
    done = run_cli("ab", "HEAD~1", ".", "--repo", repo, "--backends", "jax", "--repeat", "1", "--run-dir", run_dir,
                   "--profile", "smoke", "--dataset", "synthetic", "--train-samples", "64", "--test-samples", "64",
                   "--maxlen", "20", "--device", "cpu", "--noise", "none", "--", "-k", "serve")
    # One process a side ran, so nothing could be gated: exit 3, a setup problem, never a pass.
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
    assert "NOT GATED: 1 of 1 shared line(s) could not be gated" in done.stdout and "No regressions" not in done.stdout
    assert done.stdout.index("[1/2] base jax") < done.stdout.index("[2/2] head jax")
    assert f"# ab: base {base[:12]} (HEAD~1) vs head working tree at {head[:12]} (.)" in done.stdout
    assert "cannot gate: 1 vs 1 processes, needs 3 a side" in done.stdout
    assert (run_dir / "COMPARE.md").read_text().startswith("# ab: base")
    assert {p.name for p in run_dir.glob("*.log")} == {"base-jax.log", "head-jax.log"}
    found = {}
    for side, commit in (("base", base), ("head", head)):
        [path] = (run_dir / side).glob("*.json")
        assert json.loads(path.read_text())["commit_info"]["id"] == commit  # each side ran its own checkout
        [run] = results.load([path])[0]
        found[side] = run
    assert found["base"].info.run_id != found["head"].info.run_id
    [serve] = found["head"].results
    assert serve.kind == "serve_batch1" and serve.step.rounds.stop_reason == "fixed"
    assert serve.context.batch_size == 1 and serve.stats.rounds == serve.step.serving.queries
    assert serve.step.tail.p50_s <= serve.step.tail.p90_s <= serve.step.tail.p99_s
    assert found["head"].info.fingerprint["usable_cores"] >= 1
    assert git(repo, "worktree", "list").count("\n") == 0  # the worktrees are gone


def test_ab_refuses_unknown_refs(tmp_path, two_commits):
    repo, _, _ = two_commits
    done = run_cli("ab", "nosuchref", "HEAD", "--repo", repo, "--run-dir", tmp_path / "ab", timeout=60)
    assert done.returncode == 2 and "'nosuchref' is not a commit" in done.stderr


def test_an_older_commits_processes_count_as_one_run(tmp_path):
    # Code from before run ids records none: ab knows its side folder holds one run of N processes.
    for i, median in enumerate([0.100, 0.110, 0.120]):
        write_result(tmp_path, make_result("jax", kinds=("train_step",), train=(median, 0.001),
                                           started=f"2026-11-29T08:0{i}:00+00:00"))
    found = results.results_of(results.load([tmp_path])[0])
    assert len(latest(found)) == 1  # on their own: three runs, and the newest wins
    side = ab.as_one_run(found, "base-run")
    assert len(latest(side)) == 3 and aggregate(side).processes == 3


def test_compare_header_names_the_commits_side_options_and_machine(tmp_path):
    machine = {"cpu_model": "Test CPU 1", "usable_cores": 2, "threads": 1, "gpu": None}
    write_result(tmp_path, make_result("jax", kinds=("train_step",), fingerprint=machine))
    head = results.results_of(results.load([tmp_path])[0])
    done = ab.AbRun("a" * 40, f"working tree at {'b' * 40}", [], tmp_path, {"base": "1", "head": "2"})
    header = ab.compare_header(done, "main", ".", base_args=[], head_args=["--maxlen", "220"], repeat=3, head=head)
    assert header == (f"# ab: base {'a' * 12} (main) vs head working tree at {'b' * 12} (.)\n\n"
                      "Side options: base -, head --maxlen 220.\n\n"
                      "Measured on Test CPU 1, 2 usable cores, 1 threads, no GPU, interleaved, "
                      "3 process(es) a side.\n\n")
    plain = ab.compare_header(done, "main", ".", base_args=[], head_args=[], repeat=3, head=[])
    assert "Side options" not in plain and "Measured on machine not recorded" in plain


# ------------------------------------------------------------------------------------ environments

ENV_BENCHMARK = '''import json, os, sys

def test_env(pytestconfig):
    keys = ("KERAS_BACKEND", "KERASBENCH_ENVIRONMENT", "PYTHONPATH")
    os.makedirs(pytestconfig.getoption("results_dir"), exist_ok=True)
    with open(os.path.join(pytestconfig.getoption("results_dir"), "order.jsonl"), "a") as fh:
        fh.write(json.dumps({**{k: os.environ.get(k) for k in keys}, "python": sys.executable}) + "\\n")
'''


def env_checkout(path):
    fake_checkout(path)
    (path / "bench" / "test_env.py").write_text(ENV_BENCHMARK)
    return path


def overlay(tmp_path, name="ov"):
    folder = tmp_path / name
    folder.mkdir()
    return envs.Environment("overlay", f"id-{name}", sys.executable, (str(folder),), ("keras==3.12.0",), folder)


def test_a_side_runs_in_its_own_environment(tmp_path):
    code = env_checkout(tmp_path / "code")
    ov = overlay(tmp_path)
    sides = [runner.Side("base", code, tmp_path / "base", "b", (), ov),
             runner.Side("head", code, tmp_path / "head", "h")]
    for side in sides:
        side.results.mkdir()
    outcomes = runner.run_interleaved(["jax"], [], sides, repeat=1, log_dir=tmp_path / "logs")
    assert [o.status for o in outcomes] == ["ok", "ok"]
    [base] = [json.loads(line) for line in (tmp_path / "base" / "order.jsonl").read_text().splitlines()]
    [head] = [json.loads(line) for line in (tmp_path / "head" / "order.jsonl").read_text().splitlines()]
    assert base["PYTHONPATH"].split(os.pathsep)[0] == str(ov.folder) and base["KERASBENCH_ENVIRONMENT"] == ov.label
    assert head["KERASBENCH_ENVIRONMENT"] == "" and str(ov.folder) not in (head["PYTHONPATH"] or "")


def test_a_backend_missing_from_one_sides_full_environment_is_skipped_for_that_side_only(tmp_path):
    # A stand-in interpreter: it answers the backend check (python -c CODE NAME) with "no torch here", and
    # runs everything else with this interpreter.
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nif [ "$1" = "-c" ]; then\n  [ "$3" = "torch" ] && echo "no torch here" >&2 && '
                      f'exit 1\n  exit 0\nfi\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    full = envs.Environment("full", "id-full", str(python), (), ("torch==2.0.0",), tmp_path)
    code = env_checkout(tmp_path / "code")
    sides = [runner.Side("a", code, tmp_path / "a", "a"), runner.Side("b", code, tmp_path / "b", "b", (), full)]
    for side in sides:
        side.results.mkdir()
    outcomes = runner.run_interleaved(["torch"], [], sides, repeat=1, log_dir=tmp_path / "logs")
    assert [(o.label, o.status) for o in outcomes] == [("b torch", "not installed"), ("a torch", "ok")]
    outcomes = runner.run_interleaved(["jax"], [], sides[1:], repeat=1, log_dir=tmp_path / "logs")
    assert [o.status for o in outcomes] == ["ok"]
    [entry] = [json.loads(line) for line in (tmp_path / "b" / "order.jsonl").read_text().splitlines()]
    assert entry["KERASBENCH_ENVIRONMENT"] == full.label


def test_sides_get_their_commits_constraints_only_when_the_commits_differ():
    same = ab.side_requests({"base": "keras==3.15.1\n", "head": "keras==3.15.1\n"}, {}, ["jax"])
    assert all(request.empty for request in same.values())
    differ = ab.side_requests({"base": "keras==3.14.1\n", "head": "keras==3.15.1\n"}, {}, ["jax"])
    assert differ["base"].constraints == "keras==3.14.1\n"
    assert differ["base"].constraints_from == "base's constraints.txt"
    assert differ["head"].constraints == "keras==3.15.1\n" and differ["head"].backends == ("jax",)
    chosen = ab.side_requests({"base": "a==1\n", "head": "a==2\n"},
                              {"head": ab.SideEnvironment(("keras==3.12.0",))}, ["jax"])
    assert chosen["head"].packages == ("keras==3.12.0",) and chosen["head"].constraints == "a==2\n"
    with pytest.raises(envs.EnvironmentFailed, match="cannot read constraints file"):
        ab.side_requests({"base": "", "head": ""}, {"base": ab.SideEnvironment((), Path("/nonexistent"))}, ["jax"])


def test_constraint_changes_read_pins_as_versions():
    before = "keras==3.14.1\njax==0.10.2\nold==1.0\nfree>=1\n"
    after = "keras==3.15.1\njax==0.10.2\nnew==2.0\nfree>=2\n"
    assert ab.constraint_changes(before, after) == ["keras 3.14.1 → 3.15.1", "+new 2.0", "-old 1.0",
                                                    "free: free>=1 → free>=2"]
    assert ab.constraint_changes(before, before) == []


def test_compare_md_opens_with_the_version_differences(tmp_path):
    write_result(tmp_path / "base", make_result("jax", kinds=("train_step",), keras="3.14.1",
                                                packages=["keras==3.14.1", "jax==0.10.2"]))
    write_result(tmp_path / "head", make_result("jax", kinds=("train_step",),
                                                packages=["keras==3.15.1", "jax==0.10.2"]))
    base, head = (results.results_of(results.load([tmp_path / side])[0]) for side in ("base", "head"))
    ov = overlay(tmp_path)
    done = ab.AbRun("a" * 40, "b" * 40, [], tmp_path, {"base": "1", "head": "2"}, {"base": ov, "head": envs.PROJECT},
                    ["keras 3.14.1 → 3.15.1"])
    header = ab.compare_header(done, "HEAD~1", "HEAD", base_args=[], head_args=[], repeat=3, head=head, base=base)
    assert header.startswith(f"# ab: base {'a' * 12} (HEAD~1) vs head {'b' * 12} (HEAD)\n\n"
                             "Versions: constraints.txt differs between the commits: keras 3.14.1 → 3.15.1.\n\n"
                             "Packages: keras 3.14.1 → 3.15.1.\n\n"
                             f"Environments: base {ov.label}; head project venv.\n\n")


@pytest.fixture
def bumped(tmp_path):
    """A repository of the fake checkout: commit A pins keras==3.14.1, commit B bumps it to 3.15.1."""
    repo = env_checkout(tmp_path / "repo")
    (repo / "constraints.txt").write_text("keras==3.14.1\nnumpy==2.4.6\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "A")
    (repo / "constraints.txt").write_text("keras==3.15.1\nnumpy==2.4.6\n")
    git(repo, "commit", "-q", "-am", "B: bump keras")
    return repo


def test_ab_of_a_constraints_bump_runs_each_side_on_its_own_pinned_set(tmp_path, bumped):
    asked = {}

    def prepare(request, *, root):
        side = "base" if "3.14.1" in request.constraints else "head"
        asked[side] = (request, root)
        return overlay(tmp_path, side) if side == "base" else envs.PROJECT

    done = ab.run_ab("HEAD~1", "HEAD", repo=bumped, backends=["jax"], pytest_args=[], repeat=1,
                     run_dir=tmp_path / "ab", prepare=prepare)
    assert [o.status for o in done.outcomes] == ["ok", "ok"]
    assert asked["base"][0].constraints_from == "base's constraints.txt" and asked["base"][1] != bumped
    assert done.constraint_changes == ["keras 3.14.1 → 3.15.1"]
    assert done.environments["base"].label == "overlay id-base: keras==3.12.0"
    [entry] = [json.loads(line) for line in (tmp_path / "ab" / "base" / "order.jsonl").read_text().splitlines()]
    assert entry["KERASBENCH_ENVIRONMENT"] == "overlay id-base: keras==3.12.0"
    assert git(bumped, "worktree", "list").count("\n") == 0


def test_ab_with_an_environment_that_cannot_be_built_is_a_usage_error(tmp_path, bumped):
    done = run_cli("ab", "HEAD~1", "HEAD", "--repo", bumped, "--head-constraints", tmp_path / "none.txt",
                   "--run-dir", tmp_path / "ab", timeout=120)
    assert done.returncode == 2 and "cannot read constraints file" in done.stderr and "Traceback" not in done.stderr
    assert git(bumped, "worktree", "list").count("\n") == 0
