"""``python -m bench explain``: run's train steps with --explain, then the phases' table (bench/commands/explain.py).

Each backend's phases and op families from a real run: tests/test_plugin.py (its tiny run explains).
"""

import pytest

from bench import runner
from bench.commands import main
from tests.resultfiles import make_result, phases_of, write_result


def test_explain_runs_the_train_steps_with_explain_and_prints_where_the_time_goes(tmp_path, monkeypatch, capsys):
    asked = []

    def run_backends(backends, pytest_args, run_dir, repeat=1, environment=None, backend_environments=None):
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
    assert "| 80.0 profiled: matmul 50.0 (62%), element-wise 30.0 (38%) |" in out  # families as shares of their total
    assert "## Where the time goes" in (tmp_path / "REPORT.md").read_text()
    assert list(tmp_path.glob("breakdown_*.png"))


def test_explain_says_so_when_nothing_was_split(tmp_path, monkeypatch, capsys):
    def run_backends(backends, pytest_args, run_dir, repeat=1, environment=None, backend_environments=None):
        write_result(run_dir, make_result("torch", kinds=("train_step",)))
        return [runner.Outcome("torch", "ok", 1.0, label="torch")]

    monkeypatch.setattr(runner, "run_backends", run_backends)
    assert main(["explain", "--backends", "torch", "--run-dir", str(tmp_path)]) == 0
    assert "explain: no train step was split" in capsys.readouterr().out


def test_wall_time_goes_to_the_innermost_event_and_is_shared_where_threads_overlap():
    from bench.backends.base import wall_seconds

    events = [("A", "loop", 0.0, 10.0), ("A", "dot", 2.0, 2.0), ("A", "dot", 6.0, 2.0), ("B", "add", 3.0, 2.0)]
    found = wall_seconds(events, idle=lambda name: False)
    # dot alone 2-3 and 6-8, with add 3-4 (half each); add with the loop 4-5 (half each); the loop the rest.
    assert found == pytest.approx({"dot": 3.5, "add": 1.0, "loop": 5.5})
    assert sum(found.values()) == pytest.approx(10.0)  # never more than the wall time traced
    # An idle event (an executor waiting) holds nothing: what ran beside it has the time to itself.
    assert wall_seconds(events, idle=lambda name: name == "loop") == pytest.approx({"dot": 3.5, "add": 1.5})


def test_xla_thunks_are_named_in_the_one_vocabulary():
    from bench.backends.base import xla_family

    cases = {"ynn_fusion.12": "matmul", "dot.3": "matmul", "while.1": "loop and control",
             "bitcast_dynamic-update-slice_fusion.2": "copies and layout", "copy.9": "copies and layout",
             "multiply_add_fusion": "element-wise", "wrapped_tanh": "element-wise", "gather.4": "gather/scatter"}
    assert {name: xla_family(name) for name in cases} == cases
