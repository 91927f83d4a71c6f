"""experiments/progress_overhead.py: its ABBA plan, and one tiny run end to end on synthetic data."""

from __future__ import annotations

import re

from experiments.progress_overhead import order
from tests.conftest import run_python


def test_each_side_goes_first_in_every_other_pair():
    assert order(3) == [True, False, False, True, True, False]
    assert order(4).count(True) == order(4).count(False) == 4


def test_it_runs_and_reports_both_medians_and_the_test():
    done = run_python("-m", "experiments.progress_overhead", "--pairs", "1", "--train-samples", "64",
                      "--test-samples", "32", "--dataset", "synthetic", "--threads", "1",
                      env={"KERAS_BACKEND": "jax"}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(re.findall(r"^epoch \d: progress (on |off)", done.stdout, re.M)) == 2
    assert re.search(r"on/off \d+\.\d{3}; Mann-Whitney U p = \d\.\d{3} \(1 epochs each side\)", done.stdout)
