"""Interleaved processes: ``bench run --repeat N`` and ``bench ab BASE HEAD`` (two commits, one sitting)."""

import json
import shutil
import subprocess

import pytest

from bench import ab, results, runner
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
