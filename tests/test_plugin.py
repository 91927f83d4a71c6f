"""The benchmarks end to end (tiny synthetic run in a subprocess, under each backend) and the run's errors.

Refusals made before any backend starts (options, the archive, the batch, the results folder) run once;
each option's message is checked in-process on the option table (tests/test_settings.py).
"""

import json

import pytest

from bench import native, report, results, tables
from bench.backends import selected_backend
from bench.results import SCHEMA_VERSION
from tests.conftest import run_bench

TINY = ["--profile", "smoke", "--dataset", "synthetic", "--train-samples", "64", "--test-samples", "64",
        "--maxlen", "20", "--device", "cpu"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    # --explain under torch: the train steps are also split into phases after their timed rounds. The path from
    # the split to the record is the backends' own; each adapter's phase variants are checked in
    # tests/test_backends_work.py, and torch alone has op families (its profiler). Under JAX the split costs
    # six more compilations (three variants each for Keras's step and the native one).
    explain = ["--explain"] if selected_backend() == "torch" else []
    proc = run_bench(*TINY, *explain, "--results-dir", str(results))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = list(results.glob("*.json"))
    assert len(files) == 1, files
    return files[0], json.loads(files[0].read_text())


@pytest.mark.per_backend
def test_result_file_is_named_for_backend_device_and_profile(tiny_run):
    path, _ = tiny_run
    assert path.name.startswith(f"{selected_backend()}-cpu-smoke_")


@pytest.mark.per_backend
def test_benchmark_names_carry_backend_and_device(tiny_run):
    _, doc = tiny_run
    label = f"{selected_backend()}-cpu"
    kinds = ["accuracy", "predict_step", "serve_batch1", "train_step"]
    if native.is_supported():
        kinds += ["native_predict_step", "native_train_step"]
    assert sorted(b["name"] for b in doc["benchmarks"]) == sorted(f"test_{kind}[{label}]" for kind in kinds)


@pytest.mark.per_backend
def test_run_block_records_schema_and_completion(tiny_run):
    _, doc = tiny_run
    run = doc["kerasbench"]
    assert run["schema_version"] == SCHEMA_VERSION and run["finished"] is True and run["exitstatus"] == 0
    assert run["backend"] == selected_backend() and run["device"] == "cpu"
    assert doc["machine_info"]["kerasbench"]["keras"]
    packages = run["packages"]  # the process's exact package set, as it imports it
    assert f"keras=={doc['machine_info']['kerasbench']['keras']}" in packages["installed"]
    assert packages["source"] == "project venv" and len(packages["id"]) == 16


@pytest.mark.per_backend
def test_step_benchmarks_record_stats_and_context(tiny_run):
    path, doc = tiny_run
    step = next(b for b in doc["benchmarks"] if b["name"].startswith("test_train_step"))
    assert step["extra_info"]["kind"] == "train_step"
    assert step["stats"]["rounds"] == 5 and len(step["stats"]["data"]) == 5  # warm-up excluded
    [train] = [r for r in results.results_of(results.load([path])[0]) if r.name == step["name"]]
    c, m = train.context, train.step
    assert c.backend == selected_backend() and c.keras and c.backend_version and c.device_name
    assert (c.profile, c.batch_size, c.maxlen) == ("smoke", 32, 20)
    assert c.kernel.name != "unknown" and c.memory.host_rss_growth_mib is not None
    assert c.dataset["source"] == "synthetic" and c.dataset["train_samples"] == 64
    assert m.implementation == "keras" and m.staged_batches == 2
    assert m.samples_per_s == pytest.approx(32 / step["stats"]["median"])


@pytest.mark.per_backend
def test_step_records_hold_the_roofline_and_explained_train_steps_their_phases(tiny_run):
    path, _ = tiny_run
    found = {r.kind: r for r in results.results_of(results.load([path])[0])}
    for kind, r in found.items():
        if kind == "accuracy":
            continue
        roof = r.step.roofline
        assert roof.flops > 0 and roof.bytes > 0 and roof.binding in roof.bounds_s and roof.share > 0
        assert roof.achieved_flops_per_s == pytest.approx(roof.flops / r.stats.median)
        native_step = kind.startswith("native")
        assert (roof.counted_vs_analytic is None) == (native_step or roof.counter.startswith("no counter"))
        explained = kind in ("train_step", "native_train_step") and selected_backend() == "torch"
        assert (r.step.phases is not None) == explained, kind
        if explained:
            p = r.step.phases
            parts = p.forward_s + p.backward_s + p.optimizer_s + p.overhead_s
            assert parts == pytest.approx(p.step_s, rel=1e-9) and p.forward_s > 0
            assert p.measured_median_s == r.stats.median and p.rounds == 5
            assert p.adds_up == (abs(p.step_s / p.measured_median_s - 1) <= p.tolerance)
            assert (p.op_families_s is None) == p.profiler.startswith("not profiled: ")


@pytest.mark.per_backend
def test_accuracy_benchmark_records_history(tiny_run):
    path, _ = tiny_run
    [acc] = [r.accuracy for r in results.results_of(results.load([path])[0]) if r.kind == "accuracy"]
    assert acc.status == "ok" and len(acc.history) == 1
    assert set(acc.history[0]) >= {"epoch", "seconds", "loss", "accuracy", "val_loss", "val_accuracy"}
    assert acc.final_val_accuracy == acc.history[-1]["val_accuracy"]
    assert acc.train_samples_used == 64


@pytest.mark.per_backend
def test_a_real_result_file_fills_every_column_of_the_report(tiny_run):
    # The round trip: the plugin's file, the loader, the report, with nothing left blank that the
    # run measured. Only the Keras/native ratios are blank where the backend has no native reference.
    path, _ = tiny_run
    found = results.results_of(results.load([path])[0])
    [(_, [line])] = report.summarize(found)
    cells = dict(zip(report.HEADERS, report.cells(line), strict=True))
    native_columns = {"Keras/native train", "Keras/native predict"}
    for header, cell in cells.items():
        blank = cell == tables.MISSING
        assert blank == (header in native_columns and not native.is_supported()), (header, cell)
    assert "| " + " | ".join(cells.values()) + " |" in report.render_markdown(found)


@pytest.mark.parametrize(("args", "message"), [(["--batch-size", "0"], "must be at least 1"),
                                               (["--profile", "huge"], "invalid choice")])
def test_bad_options_fail_fast_with_a_clear_message(args, message):
    # Both kinds of refusal (a type's and a choice's) end to end: pytest's usage error, no traceback.
    proc = run_bench(*args)
    assert proc.returncode == 4 and message in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unknown_backend_is_a_usage_error():
    proc = run_bench(*TINY, env={"KERAS_BACKEND": "theano"})
    assert proc.returncode == 4 and "unknown Keras backend 'theano'" in proc.stderr


def test_gpu_requested_without_gpu_fails_clearly():
    # The session's refusal end to end, once; each backend's own GPU check: tests/test_backends.py.
    proc = run_bench(*TINY[:-2], "--device", "gpu", env={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 4 and "sees no GPU" in proc.stderr


def test_missing_archive_fails_with_one_paragraph(tmp_path):
    proc = run_bench(*TINY[:2], "--dataset", "aclimdb", "--imdb-path", str(tmp_path / "nope.tar.gz"),
                     "--results-dir", str(tmp_path))
    assert proc.returncode == 4 and "does not exist" in proc.stdout + proc.stderr
    assert not list(tmp_path.glob("*.json"))  # nothing half-written


def test_batch_larger_than_the_data_fails_with_one_paragraph(tmp_path):
    proc = run_bench(*TINY, "--batch-size", "100", "--results-dir", str(tmp_path))
    assert proc.returncode == 4 and "batch size 100 is larger than the 64 reviews" in proc.stdout + proc.stderr
    assert not list(tmp_path.glob("*.json"))


def test_unwritable_results_folder_fails_before_running(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run_bench(*TINY, "--results-dir", str(blocker / "results"))
    assert proc.returncode == 4 and "cannot write results" in proc.stderr
