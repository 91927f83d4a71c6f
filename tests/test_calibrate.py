"""bench.calibrate: this machine's variance of log process medians, stored per machine, read by compare; old files."""

import json
import math

import numpy as np
import pytest

from bench import calibrate, results, stats
from bench.results import CALIBRATION_MARKER
from tests.conftest import run_cli
from tests.resultfiles import make_result, write_result
from tests.test_compare import MACHINE, files, processes

KEY = "test_train_step[jax-cpu] (quick-synthetic-bs32-len200-cpu)"


def test_calibrate_stores_the_variance_of_log_process_medians_for_this_machine(tmp_path):
    medians = [0.100, 0.104, 0.098, 0.102, 0.101, 0.099]
    aa = processes(tmp_path, "aa", medians)
    output = tmp_path / "results" / "calibration.json"
    done = run_cli("calibrate", "--from", str(aa), "--output", str(output))
    assert done.returncode == 0, done.stderr
    assert "| 6 |" in done.stdout and "sd of log medians" in done.stdout
    entries, note = calibrate.load(output, MACHINE)
    assert note == "" and list(entries) == [KEY]
    measured = np.log([r.stats.median for r in results.results_of(results.load([aa])[0])])
    entry = entries[KEY]
    assert entry.log_variance == pytest.approx(np.sum((measured - measured.mean()) ** 2) / 5)  # ddof=1
    assert entry.df == 5 and entry.noise == stats.ProcessNoise(entry.log_variance, 5)
    assert entry.modes == "" and 0 < entry.detects < 0.2 and entry.processes_for_target >= 2
    assert json.loads(output.read_text())[CALIBRATION_MARKER] == calibrate.VERSION
    assert calibrate.load(output, {**MACHINE, "cpu_model": "Other"}) == ({}, "")  # another machine: none
    write_result(output.parent, make_result("jax"))
    runs, warnings = results.load([output.parent])  # the calibration file beside results is not one of them
    assert len(runs) == 1 and warnings == []
    done = run_cli("calibrate", "--from", str(files(tmp_path, "single", make_result("jax", fingerprint=MACHINE))),
                   "--output", str(output))
    assert done.returncode == 2 and "needs --repeat 2 or more" in done.stderr


def test_resolution_follows_the_noise_and_the_processes():
    quiet, loud = stats.ProcessNoise(0.01**2, 11), stats.ProcessNoise(0.03**2, 11)
    assert calibrate.resolution(quiet, 3)[0] < calibrate.resolution(loud, 3)[0]
    assert calibrate.resolution(loud, 8)[0] < calibrate.resolution(loud, 3)[0]
    detects, needed = calibrate.resolution(quiet, 3)
    # The processes named reach the target power, one fewer does not (at alpha / LINES, one line slowed).
    level = 0.05 / calibrate.LINES
    assert stats.planned_power(quiet, needed, 0.05, level) >= 0.9 > stats.planned_power(quiet, needed - 1, 0.05, level)
    assert stats.planned_power(quiet, 3, detects, level) == pytest.approx(0.8, abs=1e-6)


def test_two_modes_are_named_in_the_calibration(tmp_path):
    rng = np.random.default_rng(2)
    medians = list(np.where(np.arange(24) < 8, 0.330, 0.400) * np.exp(0.005 * rng.standard_normal(24)))
    [entry] = calibrate.measure(results.results_of(results.load([processes(tmp_path, "aa", medians)])[0]))
    assert entry.modes.startswith("bimodal (dip test p = ") and "8 of 24 processes near 33" in entry.modes


def test_calibrated_noise_applies_only_to_the_machine_it_was_measured_on(tmp_path):
    path = tmp_path / "calibration.json"
    assert calibrate.noise_for(path, MACHINE) == ({}, "")  # no file, none asked for: none, nothing said
    with pytest.raises(ValueError, match="no calibration file"):
        calibrate.noise_for(path, MACHINE, required=True)
    calibrate.write(path, MACHINE, [calibrate.Calibration("k", 12, 100.0, 0.0004, 11, 0.05)], "test")
    noise, note = calibrate.noise_for(path, MACHINE)
    assert noise == {"k": stats.ProcessNoise(0.0004, 11)}
    assert note.startswith(f"calibrated noise: 1 benchmark(s) from {path} for Test CPU 1")
    noise, note = calibrate.noise_for(path, {**MACHINE, "cpu_model": "Other"})
    assert noise == {} and note.startswith("calibrated noise: none in")
    assert calibrate.noise_for(path, None) == ({}, f"note: current results record no machine fingerprint; {path} "
                                                   "not used")


def version_1_file(path, floors):
    """A calibration file as the first version wrote it (noise floors), for the machine MACHINE."""
    from bench.fingerprint import machine_key

    document = {CALIBRATION_MARKER: 1, "machines": {machine_key(MACHINE): {
        "fingerprint": MACHINE, "measured": "2026-11-01T00:00:00+00:00", "source": "old", "floors": floors}}}
    path.write_text(json.dumps(document))
    return path


def test_a_version_1_file_is_upgraded_from_its_coefficient_of_variation(tmp_path):
    old = {"key": KEY, "processes": 6, "median_ms": 100.0, "spread": 0.06, "variation": 0.02, "split": "3 vs 3",
           "split_ratio": 1.01, "split_p": 0.4, "detects": 0.05}
    no_cv = {**old, "key": "other", "variation": None}
    path = version_1_file(tmp_path / "calibration.json", {KEY: old, "other": no_cv})
    noise, note = calibrate.noise_for(path, MACHINE)
    assert noise == {KEY: stats.ProcessNoise(pytest.approx(math.log(1 + 0.02**2)), 5)}
    assert "version-1 calibration file (noise floors): 1 entry upgraded" in note and "1 dropped" in note
    # Writing this machine again stores version 2 and keeps the other machines' entries, upgraded.
    other = {**MACHINE, "cpu_model": "Other CPU"}
    calibrate.write(path, other, [calibrate.Calibration("k", 4, 50.0, 0.0001, 3, 0.02)], "new")
    document = json.loads(path.read_text())
    assert document[CALIBRATION_MARKER] == calibrate.VERSION
    assert all("floors" not in machine and "noise" in machine for machine in document["machines"].values())
    assert calibrate.noise_for(path, MACHINE)[0][KEY].df == 5


@pytest.mark.parametrize(("document", "message"), [
    ({CALIBRATION_MARKER: 99, "machines": {}}, "calibration file version 99; this kerasbench reads versions 1 to 2"),
    ({"benchmarks": []}, "not a kerasbench calibration file"),
])
def test_unreadable_calibration_files_are_refused_with_a_reason(tmp_path, document, message):
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=message):
        calibrate.noise_for(path, MACHINE)
    base = processes(tmp_path, "base", [0.100, 0.101, 0.099])
    done = run_cli("compare", str(base), str(base), "--noise", str(path))
    assert done.returncode == 2 and message.split(";")[0] in done.stderr


def test_compare_reads_a_version_1_file_and_says_so(tmp_path):
    base = processes(tmp_path, "base", [0.100, 0.101, 0.099])
    old = {"key": KEY, "processes": 6, "median_ms": 100.0, "spread": 0.06, "variation": 0.02}
    path = version_1_file(tmp_path / "calibration.json", {KEY: old})
    done = run_cli("compare", str(base), str(base), "--noise", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 entry upgraded" in done.stderr
