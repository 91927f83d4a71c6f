"""``python -m bench explain``: run's train steps with --explain, then the phases' table (bench/commands/explain.py).

Each backend's phases and op families from a real run: tests/test_plugin.py (its tiny run explains).
"""

from bench import runner
from bench.commands import main
from tests.resultfiles import make_result, phases_of, write_result


def test_explain_runs_the_train_steps_with_explain_and_prints_where_the_time_goes(tmp_path, monkeypatch, capsys):
    asked = []

    def run_backends(backends, pytest_args, run_dir, repeat=1, environment=None):
        asked.append((list(backends), list(pytest_args), repeat))
        doc = make_result("torch", kinds=("train_step",), train=(0.100, 0.002))
        doc["benchmarks"][0]["extra_info"]["metrics"]["phases"] = phases_of(0.100)
        write_result(run_dir, doc)
        return [runner.Outcome("torch", "ok", 1.0, label="torch")]

    monkeypatch.setattr(runner, "run_backends", run_backends)
    assert main(["explain", "--backends", "torch", "--profile", "smoke", "--run-dir", str(tmp_path)]) == 0
    [(backends, args, repeat)] = asked
    assert backends == ["torch"] and repeat == 1
    assert args[args.index("-k") + 1] == "train_step" and args[args.index("--explain") + 1] == "yes"
    out = capsys.readouterr().out
    assert "## Where the time goes (train step)" in out and "| torch 1.0.0 | Keras | 40.0 | 40.0 | 15.0 | 5.0 |" in out
    assert "## Where the time goes" in (tmp_path / "REPORT.md").read_text()
    assert list(tmp_path.glob("breakdown_*.png"))


def test_explain_says_so_when_nothing_was_split(tmp_path, monkeypatch, capsys):
    def run_backends(backends, pytest_args, run_dir, repeat=1, environment=None):
        write_result(run_dir, make_result("torch", kinds=("train_step",)))
        return [runner.Outcome("torch", "ok", 1.0, label="torch")]

    monkeypatch.setattr(runner, "run_backends", run_backends)
    assert main(["explain", "--backends", "torch", "--run-dir", str(tmp_path)]) == 0
    assert "explain: no train step was split" in capsys.readouterr().out
