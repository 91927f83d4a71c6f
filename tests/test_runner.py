"""``python -m bench run``: one process per backend, going on past failures, ending in a table, one folder."""

import argparse
import sys

import pytest

from bench import environments, runner
from bench.backends import BackendError, selected_backend
from bench.commands import options
from tests.conftest import run_cli

TINY = ["--dataset", "synthetic", "--train-samples", "64", "--test-samples", "64", "--maxlen", "20"]


def test_run_from_outside_the_checkout_keeps_every_file_in_its_run_folder(tmp_path):
    # Started from an unrelated folder with no --run-dir: results, logs, report and plots all land in
    # <results>/runs/<time>/, and the reference report is left alone.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    results = tmp_path / "results"
    proc = run_cli("run", "--backends", selected_backend(), "--profile", "smoke", "--device", "cpu", *TINY,
                   "--", "-k", "train_step and not native", cwd=elsewhere, env={"KERASBENCH_RESULTS": str(results)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"| {selected_backend()} | ok |" in proc.stdout
    assert "PASSED" in proc.stdout  # progress lines from the backend's run
    [run_dir] = (results / "runs").iterdir()
    names = sorted(p.name for p in run_dir.iterdir())
    assert len([n for n in names if n.endswith(".json")]) == 1
    assert f"{selected_backend()}.log" in names and "REPORT.md" in names and any(n.endswith(".png") for n in names)
    assert sorted(p.name for p in results.iterdir()) == ["runs"]  # no REPORT.md beside the runs
    assert list(elsewhere.iterdir()) == []  # nothing in the folder it was started from
    assert "LSTM kernel" in proc.stdout and "# kerasbench report" not in proc.stdout  # compact table; the file: wide


def test_shared_options_are_checked_by_run_itself(tmp_path):
    proc = run_cli("run", "--backends", selected_backend(), "--seed", "-1", "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 2 and "is not a seed" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_no_matching_benchmark_is_said_plainly(tmp_path):
    proc = run_cli("run", "--backends", selected_backend(), "--profile", "smoke", "--device", "cpu", *TINY,
                   "--run-dir", str(tmp_path / "run"), "--", "-k", "nomatch")
    assert proc.returncode == 1
    assert f"| {selected_backend()} | no benchmark matched" in proc.stdout and "exit 5" not in proc.stdout


def test_missing_and_failing_backends_do_not_stop_the_run(tmp_path, monkeypatch):
    def check(name):
        if name == "torch":
            raise BackendError("torch is not installed")

    monkeypatch.setattr(runner, "check_backend", check)
    outcomes = runner.run_backends(["torch", "jax"], ["--profile", "nonexistent"], tmp_path)
    assert [o.backend for o in outcomes] == ["torch", "jax"]
    assert outcomes[0].status == "not installed"
    assert outcomes[1].status.startswith("failed (exit 4)") and "invalid choice" in outcomes[1].status
    assert "| torch | not installed |" in runner.summary(outcomes)


def test_unknown_backend_in_list_is_a_usage_error():
    proc = run_cli("run", "--backends", "jax,mxnet", timeout=60)
    assert proc.returncode == 2 and "unknown backend(s) mxnet" in proc.stderr


def test_abba_reverses_every_other_round():
    assert [runner.abba(("base", "head"), i) for i in range(4)] == [
        ["base", "head"], ["head", "base"], ["base", "head"], ["head", "base"]]
    assert runner.abba(("only",), 1) == ["only"]


def test_a_backend_not_installed_is_skipped_not_failed():
    assert not runner.Outcome("jax", "ok").failed and not runner.Outcome("jax", "not installed").failed
    assert runner.Outcome("jax", "failed (exit 1): boom").failed and runner.Outcome("jax", "killed (SIGKILL)").failed
    assert runner.Outcome("jax", "interrupted").failed


def test_a_backend_killed_by_a_signal_without_a_name_is_reported(tmp_path):
    # A real-time signal has a number but no name in Python: the status says which, instead of failing.
    import signal

    number = next(n for n in range(signal.SIGRTMIN + 1, signal.SIGRTMAX) if n not in set(signal.Signals))
    (tmp_path / "pytest.py").write_text(f"import os\nos.kill(os.getpid(), {number})\n")  # `python -m pytest` here
    side = runner.Side("", tmp_path, tmp_path, "run")
    outcome = runner._run_one(selected_backend(), [], side, 0, tmp_path / "log.txt")
    assert outcome.status == f"killed (signal {number})"


def test_an_environment_that_cannot_be_built_stops_run_before_any_process(tmp_path):
    proc = run_cli("run", "--backends", selected_backend(), "--constraints", str(tmp_path / "none.txt"),
                   "--run-dir", str(tmp_path / "run"), timeout=60)
    assert proc.returncode == 2 and "cannot read constraints file" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_backend_named_with_python_runs_with_its_own_interpreter(tmp_path):
    tf_venv = environments.venv("/gpu/.venv-gpu-tf/bin/python")
    side = runner.Side("", tmp_path, tmp_path, "id", backend_environments=(("tensorflow", tf_venv),))
    assert side.environment_for("tensorflow") is tf_venv and side.environment_for("jax") is environments.PROJECT
    assert tf_venv.own_interpreter and tf_venv.label == "venv /gpu/.venv-gpu-tf/bin/python"
    assert "PYTHONHOME" not in tf_venv.variables({"PYTHONHOME": "/elsewhere"})
    assert environments.venv(sys.executable) is environments.PROJECT


def test_python_option_is_checked_and_refused_beside_with(tmp_path):
    python = tmp_path / "python"
    python.touch()
    assert options.backend_python(f"torch={python}") == ("torch", str(python))
    for bad in ("torch", f"mxnet={python}", f"torch={tmp_path / 'missing'}"):
        with pytest.raises(argparse.ArgumentTypeError):
            options.backend_python(bad)
    args = argparse.Namespace(pythons=[("torch", "/a/python"), ("torch", "/b/python")])
    assert options.backend_environments(args, environments.PROJECT)["torch"].python == "/b/python"
    overlay = environments.Environment("overlay", "1a2b", sys.executable, packages=("keras==3.12.0",))
    with pytest.raises(options.UsageError, match="cannot be combined"):
        options.backend_environments(args, overlay)


def test_a_failed_backends_error_reaches_the_summary_whole(tmp_path):
    why = ("--device gpu was asked for, but the jax backend sees no GPU on this machine: a CUDA build is installed "
           "(jax 0.10.2 with jax-cuda13-plugin 0.10.2), but it found no GPU. Its error: Jax plugin configuration "
           "error: RuntimeError: operation cuInit(0) failed. Check its CUDA libraries first (`python -m bench "
           "cuda-libs`, no GPU needed), then the NVIDIA driver (nvidia-smi) and CUDA_VISIBLE_DEVICES.")
    log = tmp_path / "jax.log"
    log.write_text(f"collected 0 items\n{'!' * 20} _pytest.outcomes.Exit: kerasbench: {why} {'!' * 20}\n")
    assert runner._last_error(log) == f"kerasbench: {why}"
    assert len(why) > 200  # the old cut fell before the fix the message names
