"""bench.calibrate: this machine's variance of log process medians, stored per machine, read by compare; old files."""

import json
import math
import re

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
    assert stats.planned_power(quiet, 3, detects, level) == pytest.approx(0.8, abs=1e-4)  # the root finder's tolerance


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


# ------------------------------------------------------------- each field, each refusal, each note, in process

def loaded(folder):
    return results.results_of(results.load([folder])[0])


def test_measure_fills_every_field_of_an_entry(tmp_path):
    medians = [0.100, 0.104, 0.098, 0.102]
    processes(tmp_path, "aa", medians, spread=0.0, rounds=5)  # every round at its median: the medians are exact
    # A later single process of another benchmark: it has no spread to measure and is skipped (not the end of
    # the list: it sorts first), and it belongs to its own benchmark, not to the newest run of the line.
    single = make_result("jax", kinds=("predict_step",), fingerprint=MACHINE, started="2026-11-02T08:00:00+00:00",
                         data={"predict_step": [0.02] * 5})
    write_result(tmp_path / "aa", single, name="predict.json")
    [entry] = calibrate.measure(loaded(tmp_path / "aa"))
    logs = np.log(medians)
    assert entry.key == KEY and entry.processes == 4 and entry.df == 3 and entry.at_processes == 3
    assert entry.log_variance == pytest.approx(np.sum((logs - logs.mean()) ** 2) / 3)
    assert entry.median_ms == pytest.approx(1e3 * math.exp(logs.mean()))  # the geometric mean, in ms
    assert entry.spread == pytest.approx(0.104 / 0.098 - 1) and entry.modes == "" and entry.upgraded == ""
    level = 0.05 / calibrate.LINES
    noise = stats.ProcessNoise(entry.log_variance, 3)
    assert stats.planned_power(noise, 3, entry.detects, level) == pytest.approx(0.8, abs=1e-4)
    needed = entry.processes_for_target
    assert stats.planned_power(noise, needed, 0.05, level) >= 0.9 > stats.planned_power(noise, needed - 1, 0.05, level)
    [at_eight] = calibrate.measure(loaded(tmp_path / "aa"), processes=8)
    assert at_eight.at_processes == 8 and at_eight.detects < entry.detects


def test_two_modes_are_described_without_a_side_name_in_milliseconds(tmp_path):
    import diptest

    medians = [0.3334] * 8 + [0.400] * 16
    [entry] = calibrate.measure(loaded(processes(tmp_path, "aa", medians, spread=0.0, rounds=3)))
    p = diptest.diptest(np.sort(np.log(medians)))[1]
    assert entry.modes == f"bimodal (dip test p = {p:.2g}): 8 of 24 processes near 333 ms, 16 near 400 ms"


def test_resolution_counts_the_threshold_and_stops_at_50_processes():
    noise, level = stats.ProcessNoise(0.02**2, 11), 0.05 / calibrate.LINES
    detects = calibrate.resolution(noise, 3, threshold=0.1)[0]  # past what the noise resolves at 3 a side
    assert stats.planned_power(noise, 3, detects, level, 0.1) == pytest.approx(0.8, abs=1e-4)
    assert detects > calibrate.resolution(noise, 3)[0]
    needed = calibrate.resolution(noise, 3, threshold=0.04)[1]  # a 5% slowdown just past a 4% threshold
    assert stats.planned_power(noise, needed, 0.05, level, 0.04) >= 0.9
    assert stats.planned_power(noise, needed - 1, 0.05, level, 0.04) < 0.9 and needed != calibrate.resolution(
        noise, 3)[1]
    # 51 processes a side would reach 90% here, 50 do not: "over 50" (None).
    edge = stats.ProcessNoise(0.0625**2, 11)
    assert stats.planned_power(edge, 51, 0.05, level) >= 0.9 > stats.planned_power(edge, 50, 0.05, level)
    assert calibrate.resolution(edge, 3)[1] is None


def test_fingerprint_of_needs_exactly_one_machine(tmp_path):
    one = loaded(processes(tmp_path, "one", [0.1, 0.1]))
    assert calibrate.fingerprint_of(one) == MACHINE
    other = loaded(processes(tmp_path, "other", [0.1], fingerprint={**MACHINE, "cpu_model": "Other CPU"}))
    with pytest.raises(ValueError, match=r"^these result files come from several machines: calibrate one machine"):
        calibrate.fingerprint_of(one + other)
    none = loaded(processes(tmp_path, "none", [0.1], fingerprint=None))
    with pytest.raises(ValueError, match=r"^these result files record no machine fingerprint: run calibrate with"):
        calibrate.fingerprint_of(none)


def test_write_stores_the_machine_its_time_and_source(tmp_path):
    from datetime import datetime

    from bench.fingerprint import machine_key

    path = tmp_path / "calibration.json"
    entry = calibrate.Calibration("k", 4, 50.0, 0.0001, 3, 0.02)
    assert calibrate.write(path, MACHINE, [entry], "aa-run") == path
    [(key, machine)] = json.loads(path.read_text())["machines"].items()
    assert key == machine_key(MACHINE) and set(machine) == {"fingerprint", "measured", "source", "noise"}
    assert machine["fingerprint"] == MACHINE and machine["source"] == "aa-run"
    assert datetime.fromisoformat(machine["measured"]).utcoffset().total_seconds() == 0  # UTC, and says so
    assert calibrate.load(path, MACHINE) == ({"k": entry}, "")


def test_a_file_without_machines_or_noise_has_no_entries(tmp_path):
    from bench.fingerprint import machine_key

    path = tmp_path / "calibration.json"
    assert calibrate.load(path, MACHINE) == ({}, "")  # no file
    path.write_text(json.dumps({CALIBRATION_MARKER: 2}))
    assert calibrate.load(path, MACHINE) == ({}, "")
    path.write_text(json.dumps({CALIBRATION_MARKER: 2, "machines": {machine_key(MACHINE): {"source": "x"}}}))
    assert calibrate.load(path, MACHINE) == ({}, "")


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not a readable calibration file"),
    ("[]", "not a kerasbench calibration file"),
    (json.dumps([CALIBRATION_MARKER]), "not a kerasbench calibration file"),
    (json.dumps({"machines": {}}), "not a kerasbench calibration file"),
    (json.dumps({CALIBRATION_MARKER: 0}), "calibration file version 0; this kerasbench reads versions 1 to 2: update"),
    (json.dumps({CALIBRATION_MARKER: 3}), "calibration file version 3; this kerasbench reads versions 1 to 2: update"),
    (json.dumps({CALIBRATION_MARKER: "2"}), "calibration file version '2'; this kerasbench reads versions 1 to 2"),
])
def test_unreadable_files_are_refused_with_a_reason_in_process(tmp_path, content, message):
    path = tmp_path / "calibration.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="^" + re.escape(f"{path}: {message}")):
        calibrate.load(path, MACHINE)


def test_a_version_1_file_upgrades_each_entry_it_can_and_counts_the_rest(tmp_path):
    from bench.fingerprint import describe

    floors = {"a": {"processes": 6, "median_ms": 100.0, "spread": 0.06, "variation": 0.02},
              "b": {"processes": 2, "variation": 0.03},  # two processes (df 1) are enough; no median or spread
              "c": {"processes": 1, "variation": 0.02},  # one is not
              "d": {"processes": 6, "variation": None},
              "e": {"processes": "6", "variation": 0.02}}
    path = version_1_file(tmp_path / "calibration.json", floors)
    _, note = calibrate.noise_for(path, MACHINE)
    assert note == (f"calibrated noise: 2 benchmark(s) from {path} for {describe(MACHINE)}; {path} is a version-1 "
                    "calibration file (noise floors): 2 entries upgraded, variance of log medians from the "
                    "coefficient of variation; 3 dropped (no coefficient of variation): run calibrate again for them")
    entries, _ = calibrate.load(path, MACHINE)
    a, b = entries["a"], entries["b"]
    detects, needed = calibrate.resolution(stats.ProcessNoise(math.log1p(0.02**2), 5), 3)
    assert a == calibrate.Calibration(
        key="a", processes=6, median_ms=100.0, log_variance=pytest.approx(math.log1p(0.02**2)), df=5, spread=0.06,
        detects=pytest.approx(detects), processes_for_target=needed, at_processes=3,
        upgraded="version 1: log variance = log(1 + cv^2) from its coefficient of variation")
    assert b.key == "b" and b.processes == 2 and b.df == 1 and b.log_variance == pytest.approx(math.log1p(0.03**2))
    assert math.isnan(b.median_ms) and math.isnan(b.spread)
    one = version_1_file(tmp_path / "one.json", {"a": floors["a"]})
    assert "1 entry upgraded, variance" in calibrate.load(one, MACHINE)[1]
    assert "dropped" not in calibrate.load(one, MACHINE)[1]


def test_a_version_1_machine_without_floors_upgrades_to_no_entries(tmp_path):
    from bench.fingerprint import machine_key

    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({CALIBRATION_MARKER: 1, "machines": {machine_key(MACHINE): {"source": "old"}}}))
    entries, note = calibrate.load(path, MACHINE)
    assert entries == {} and note.startswith(f"{path} is a version-1 calibration file (noise floors): 0 entries")


def test_render_names_every_column(tmp_path):
    entries = [calibrate.Calibration("k1", 12, 123.4, 0.02**2, 11, 0.051, detects=0.0312, at_processes=4,
                                     processes_for_target=7),
               calibrate.Calibration("k2", 3, 5.5, 0.1**2, 2, 0.25, modes="bimodal (x)", processes_for_target=None)]
    text = calibrate.render(entries, MACHINE)
    assert text == (
        "Noise between processes on Test CPU 1, 2 usable cores, 2 threads, no GPU:\n\n"
        "| Benchmark | Processes | Geo. mean ms | sd of log medians | df | Spread (max/min - 1) "
        "| Detects ≥ (4 a side, 80%) | Processes for 5% (90%) | Modes |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
        "| k1 | 12 | 123 | 2.00% | 11 | 5.1% | 3.1% | 7 | one |\n"
        "| k2 | 3 | 5.50 | 10.00% | 2 | 25.0% | — | over 50 | bimodal (x) |\n\n"
        "sd of log medians: the relative sd of a process median; compare pools this variance (with its df) into "
        "each side's, so few processes still resolve small slowdowns. Detects ≥: the slowdown the gate flags with "
        "at least 80% power for one line among 10 (Holm's alpha / 10), 4 processes a side, this calibration pooled in. "
        "Processes for 5%: a side, to flag that slowdown with 90% power.\n")
    plain = calibrate.render([], MACHINE, style="plain")
    assert "Detects ≥ (3 a side, 80%)" in plain and "|" not in plain
