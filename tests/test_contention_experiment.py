"""experiments/contention.py: its competitor and its table (the runs themselves are `bench run`'s)."""

from __future__ import annotations

import time

import psutil

from bench import results
from experiments import contention as experiment
from tests.resultfiles import busy, make_result, write_result


def test_the_competitor_spins_until_the_block_ends():
    with experiment.busy_process() as proc:
        # Running the busy loop (how much CPU it gets is the scheduler's business, not this test's). Until the
        # child has exec'd, its command line is still this process's: wait for it, within a bound.
        deadline = time.monotonic() + 30
        while psutil.Process(proc.pid).cmdline()[-1:] != [experiment.SPIN] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None and psutil.Process(proc.pid).cmdline()[-1] == experiment.SPIN
    assert proc.poll() is not None  # killed and reaped


def test_the_table_sets_each_benchmark_alone_beside_busy(tmp_path):
    write_result(tmp_path / "alone", make_result("torch", train=(0.100, 0.002), predict=(0.020, 0.001),
                                                 kinds=("train_step", "predict_step"), contention=busy(0.01)))
    write_result(tmp_path / "busy", make_result("torch", train=(0.250, 0.002), predict=(0.030, 0.001),
                                                kinds=("train_step", "predict_step"), contention=busy(0.48)))
    sides = [results.results_of(results.load([tmp_path / side])[0]) for side in ("alone", "busy")]
    assert experiment.rows(*sides) == [
        ["test_predict_step[torch-cpu]", "20.0", "30.0", "1.50", "1%", "48% contended"],
        ["test_train_step[torch-cpu]", "100.0", "250.0", "2.50", "1%", "48% contended"],
    ]


def test_with_several_processes_the_table_takes_their_median_and_counts_the_flagged(tmp_path):
    for i, (median, share) in enumerate(((0.250, 0.48), (0.270, 0.05), (0.240, 0.30))):
        write_result(tmp_path / "busy", make_result("torch", train=(median, 0.002), kinds=("train_step",),
                                                    contention=busy(share)), name=f"busy-{i}.json")
    for i, median in enumerate((0.100, 0.104, 0.098)):
        write_result(tmp_path / "alone", make_result("torch", train=(median, 0.002), kinds=("train_step",),
                                                     contention=busy(0.01)), name=f"alone-{i}.json")
    sides = [results.results_of(results.load([tmp_path / side])[0]) for side in ("alone", "busy")]
    assert experiment.rows(*sides) == [["test_train_step[torch-cpu]", "100.0", "250.0", "2.50", "1%",
                                        "48% contended (2 of 3)"]]
