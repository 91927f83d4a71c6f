"""bench.contention: other processes' CPU time while a benchmark's rounds ran, and what the suite does with it."""

import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from bench import compare as cmp
from bench import contention, gpu, report, results
from tests.fake_nvml import FakeNvmlError, fake_pynvml
from tests.resultfiles import busy, make_result, write_result


def test_others_are_the_busy_time_this_process_tree_did_not_spend():
    # 2 CPUs for 2 s: 3.0 CPU-s busy, 1.0 of them ours, 0.2 stolen by the hypervisor.
    c = contention.contention(wall_s=2.0, cpus=2, busy_s=3.0, own_s=1.0, steal_s=0.2, threshold=0.10)
    assert c.other_cpu_s == pytest.approx(2.0) and c.steal_s == pytest.approx(0.2)
    assert c.share == pytest.approx(2.2 / 4) and c.contended
    # Counter granularity can read our own time above the CPUs' busy time: never negative.
    quiet = contention.contention(wall_s=2.0, cpus=2, busy_s=1.0, own_s=1.05, steal_s=0.0)
    assert quiet.other_cpu_s == 0.0 and quiet.share == 0.0 and not quiet.contended


def test_the_threshold_is_inclusive_and_steal_alone_can_contend():
    at = contention.contention(wall_s=1.0, cpus=4, busy_s=0.4, own_s=0.0, steal_s=0.0, threshold=0.10)
    below = contention.contention(wall_s=1.0, cpus=4, busy_s=0.39, own_s=0.0, steal_s=0.0, threshold=0.10)
    stolen = contention.contention(wall_s=1.0, cpus=1, busy_s=0.5, own_s=0.5, steal_s=0.3, threshold=0.10)
    assert at.contended and at.share == pytest.approx(0.10)
    assert not below.contended
    assert stolen.other_cpu_s == 0.0 and stolen.share == pytest.approx(0.3) and stolen.contended
    assert contention.describe(stolen) == ("other processes took 0% and the hypervisor 30% more (steal) of the 1 CPU's "
                                           "time while it ran (contended from 10%)")


def test_watch_subtracts_the_counters_it_read_at_start(monkeypatch):
    reads = iter([(100.0, 5.0), (103.0, 5.5)])  # busy, steal: start, stop
    own = iter([{1: 10.0, 2: 1.0}, {1: 10.5, 2: 1.5, 3: 0.25}])  # pid 3 started during the rounds
    clock = iter([50.0, 52.0])
    monkeypatch.setattr(contention, "_cpus", lambda: [0, 1])
    monkeypatch.setattr(contention, "_busy_and_steal", lambda cpus: next(reads))
    monkeypatch.setattr(contention, "_own_cpu", lambda: next(own))
    monkeypatch.setattr(contention.time, "monotonic", lambda: next(clock))
    c = contention.Watch(threshold=0.2).stop()
    # busy 3.0, ours 0.5 + 0.5 + 0.25 = 1.25, others 1.75, steal 0.5: (1.75 + 0.5) / (2 s x 2 CPUs).
    assert c.wall_s == 2.0 and c.cpus == 2
    assert c.other_cpu_s == pytest.approx(1.75) and c.steal_s == pytest.approx(0.5)
    assert c.share == pytest.approx(2.25 / 4) and c.contended and c.threshold == 0.2


def test_a_busy_process_outside_this_process_tree_is_seen():
    # A spinning process that is not our descendant (its shell parent exits, so init adopts it), on our CPUs
    # (it inherits our affinity), while this process sleeps: it takes about one CPU of ours.
    code = "import time\nend = time.monotonic() + 20\nwhile time.monotonic() < end: pass"
    shell = subprocess.run(["sh", "-c", f'"{sys.executable}" -c "{code}" >/dev/null 2>&1 & echo $!'],
                           capture_output=True, text=True, check=True, timeout=10)
    pid = int(shell.stdout.split()[0])
    try:
        time.sleep(0.3)  # let it start spinning
        watch = contention.Watch()
        time.sleep(1.0)
        c = watch.stop()
    finally:
        subprocess.run(["kill", str(pid)], check=False)
    # One spinning process on n allowed CPUs takes about 1/n of their time (0.5 on this 2-core machine).
    assert c.other_cpu_s > 0.5 and c.share >= 0.8 / c.cpus > contention.CONTENDED_SHARE
    assert c.contended and "other processes took" in contention.describe(c)


def _processes(tmp_path, side, medians, contended_at=()):
    for i, median in enumerate(medians):
        document = make_result("jax", kinds=("train_step",), train=(median, 0.002), run_id=side, repeat_index=i,
                               started=f"2026-11-01T08:{i:02d}:00+00:00",
                               contention=busy(0.46) if i in contended_at else busy(0.01))
        write_result(tmp_path / side, document, name=f"{side}-{i}.json")
    return tmp_path / side


def test_compare_does_not_gate_a_line_with_a_contended_process(tmp_path):
    base = _processes(tmp_path, "base", [0.100, 0.101, 0.099])
    # 40% slower, but one current process ran beside a busy neighbour: no verdict either way.
    cur = _processes(tmp_path, "cur", [0.140, 0.141, 0.139], contended_at=(1,))
    changes, regressions = cmp.compare([base], [cur])
    [line] = changes
    assert regressions == [] and not line.gated
    assert line.verdict == ("cannot gate: contended: 0 of 3 baseline and 1 of 3 current processes ran while other "
                            "processes used up to 46% of their CPUs")
    assert cmp.summarize(changes).exit_status == cmp.EXIT_NOT_GATED
    # The same processes, none contended: gated, and a regression.
    quiet = _processes(tmp_path, "quiet", [0.140, 0.141, 0.139])
    _, regressions = cmp.compare([base], [quiet])
    assert len(regressions) == 1


def test_the_report_marks_a_contended_line_and_says_why(tmp_path):
    write_result(tmp_path, make_result("jax", contention=busy(0.46)))
    write_result(tmp_path, make_result("torch", contention=busy(0.02)))
    runs, _ = results.load([tmp_path])
    model = report.build(results.results_of(runs))
    [group] = model.groups
    lines = {line.backend: line for line in group.lines}
    assert lines["jax"].contended == ("accuracy", "predict_step", "train_step")
    assert lines["jax"].contended_share == pytest.approx(0.46) and lines["torch"].contended == ()
    assert lines["jax"].label.endswith("(contended)") and not lines["torch"].label.endswith("(contended)")
    text = report.text(model, "md")
    assert "(contended): other processes used up to 46% (jax: accuracy, predict_step, train_step)" in text
    rows = {row.fields["backend"]: row.fields for row in model.rows if row.fields["kind"] == "train_step"}
    assert rows["jax"]["contended"] is True and rows["torch"]["contended"] is False


def test_a_contended_benchmark_warns_or_under_strict_cpu_fails():
    assert contention.warning("train_step", busy(0.05), strict=True) is None  # below the threshold: nothing
    assert contention.warning("train_step", None, strict=True) is None  # a file that predates the watch
    line = contention.warning("train_step", busy(0.46), strict=False)
    assert line.startswith("kerasbench WARNING: train_step was contended: other processes took 46% of the 2 CPUs' time")
    assert "--strict-cpu" in line
    with pytest.raises(contention.Contended, match=r"^--strict-cpu: train_step was contended"):
        contention.warning("train_step", busy(0.46), strict=True)


# ------------------------------------------------------------------------------------------- on a GPU

def _utilisation(samples):
    """A fake NVML whose per-process samples are ``samples``: (pid, smUtil) pairs, or an error to raise."""
    nv = fake_pynvml()

    def read(handle, since):
        if isinstance(samples, Exception):
            raise samples
        return [SimpleNamespace(pid=pid, timeStamp=since + 1, smUtil=sm, memUtil=0) for pid, sm in samples]

    nv.nvmlDeviceGetProcessUtilization = read
    return nv


def test_gpu_others_are_every_other_pids_mean_sm_use():
    me = os.getpid()
    watch = gpu.GpuWatch(_utilisation([(me, 90), (me, 80), (4242, 30), (4242, 10), (4343, 5)]), None)
    percent, how = gpu.others_sm_percent(watch, 0)
    assert percent == pytest.approx(20 + 5) and f"this run is pid {me}" in how and "2 other process(es)" in how


def test_gpu_samples_of_host_pids_are_told_apart_only_when_the_run_was_matched():
    samples = [(70001, 90), (70002, 40)]  # inside a container: NVML's pids are the host's
    watch = gpu.GpuWatch(_utilisation(samples), None)
    watch.run_pid = None  # NVML listed no process of this pid and nothing matched the run's memory
    percent, how = gpu.others_sm_percent(watch, 0)
    assert percent is None and how.startswith("cannot tell")
    watch.run_pid = 70001  # as other_processes sets it when the run's memory picked it out
    percent, _ = gpu.others_sm_percent(watch, 0)
    assert percent == pytest.approx(40)


def test_no_gpu_samples_in_the_window_is_no_one_else():
    watch = gpu.GpuWatch(_utilisation(FakeNvmlError("Not Found")), None)
    assert gpu.others_sm_percent(watch, 0) == (0.0, "NVML per-process utilisation: no samples in the window")
    watch = gpu.GpuWatch(_utilisation(FakeNvmlError("Not Supported")), None)
    assert gpu.others_sm_percent(watch, 0)[0] is None


def test_the_watch_flags_a_busy_gpu_even_when_the_cpus_were_free(monkeypatch):
    monkeypatch.setattr(contention, "_busy_and_steal", lambda cpus: (0.0, 0.0))
    monkeypatch.setattr(contention, "_own_cpu", lambda: {})
    contention.use_gpu_watch(gpu.GpuWatch(_utilisation([(os.getpid(), 60), (4242, 35)]), None))
    try:
        c = contention.Watch().stop()
    finally:
        contention.use_gpu_watch(None)
    assert c.share == 0.0 and c.gpu_other_sm_percent == pytest.approx(35) and c.contended
    assert "other processes' kernels kept 35% of the SMs busy" in contention.describe(c)
    assert contention.Watch().stop().gpu_other_sm_percent is None  # no GPU watch: CPU only


def test_a_line_refused_for_two_reasons_names_both(tmp_path):
    base = _processes(tmp_path, "one-base", [0.100])
    cur = _processes(tmp_path, "one-cur", [0.140], contended_at=(0,))
    [line], _ = cmp.compare([base], [cur])
    assert line.verdict == ("cannot gate: 1 vs 1 processes, needs 3 a side (--repeat 3); contended: 0 of 1 baseline "
                            "and 1 of 1 current processes ran while other processes used up to 46% of their CPUs")


def test_the_summary_counts_refused_lines_by_kind_and_leaves_the_figures_to_their_rows(tmp_path):
    # Three lines, each 1 vs 1 process, each contended by a different amount: one entry per kind of reason.
    for side, shares in (("base", (0.01, 0.01, 0.01)), ("cur", (0.46, 0.30, 0.12))):
        for backend, share in zip(("jax", "torch", "tensorflow"), shares, strict=True):
            write_result(tmp_path / side, make_result(backend, kinds=("train_step",), train=(0.100, 0.002),
                                                      run_id=side, contention=busy(share)),
                         name=f"{side}-{backend}.json")
    changes, _ = cmp.compare([tmp_path / "base"], [tmp_path / "cur"])
    assert sorted(ch.verdict.rsplit("up to ", 1)[1] for ch in changes) == ["12% of their CPUs", "30% of their CPUs",
                                                          "46% of their CPUs"]
    [summary] = [line for line in cmp.summary_lines(cmp.summarize(changes)) if line.startswith("NOT GATED")]
    assert summary == ("NOT GATED: 3 of 3 shared line(s) could not be gated: 3 x cannot gate: 1 vs 1 processes, "
                       "needs 3 a side (--repeat 3); 3 x cannot gate: contended (figures in each row) (exit 3 "
                       "unless a regression was found).")
