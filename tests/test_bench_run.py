"""The benchmarks end to end (tiny synthetic run in a subprocess) and the options' errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import native
from bench.backend import selected_backend
from bench.results import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--profile", "smoke", "--dataset", "synthetic", "--train-samples", "64", "--test-samples", "64",
        "--maxlen", "20", "--device", "cpu"]


def run_bench(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "bench/", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    proc = run_bench(*TINY, "--results-dir", str(results))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = list(results.glob("*.json"))
    assert len(files) == 1, files
    return files[0], json.loads(files[0].read_text())


def test_result_file_is_named_for_backend_device_and_profile(tiny_run):
    path, _ = tiny_run
    assert path.name.startswith(f"{selected_backend()}-cpu-smoke_")


def test_benchmark_names_carry_backend_and_device(tiny_run):
    _, doc = tiny_run
    label = f"{selected_backend()}-cpu"
    kinds = ["accuracy", "predict_step", "train_step"]
    if native.is_supported():
        kinds += ["native_predict_step", "native_train_step"]
    assert sorted(b["name"] for b in doc["benchmarks"]) == sorted(f"test_{kind}[{label}]" for kind in kinds)


def test_run_block_records_schema_and_completion(tiny_run):
    _, doc = tiny_run
    run = doc["kerasbench"]
    assert run["schema_version"] == SCHEMA_VERSION and run["finished"] is True and run["exitstatus"] == 0
    assert run["backend"] == selected_backend() and run["device"] == "cpu"
    assert doc["machine_info"]["kerasbench"]["keras"]


def test_step_benchmarks_record_stats_and_context(tiny_run):
    _, doc = tiny_run
    step = next(b for b in doc["benchmarks"] if b["name"].startswith("test_train_step"))
    assert "implementation" not in step["extra_info"]
    assert step["stats"]["rounds"] == 5 and len(step["stats"]["data"]) == 5  # warm-up excluded
    info = step["extra_info"]
    for key in ("keras", selected_backend(), "device_name", "jit_compile", "lstm_kernel", "first_step_s",
                "samples_per_s", "profile", "batch_size", "maxlen", "harness_vs_plain", "host_rss_growth_mib"):
        assert key in info, key
    assert info["lstm_kernel"] != "unknown"
    assert info["dataset"]["source"] == "synthetic" and info["dataset"]["train_samples"] == 64
    assert info["samples_per_s"] == pytest.approx(32 / step["stats"]["median"])


def test_accuracy_benchmark_records_history(tiny_run):
    _, doc = tiny_run
    acc = next(b for b in doc["benchmarks"] if b["name"].startswith("test_accuracy"))
    info = acc["extra_info"]
    assert info["status"] == "ok" and len(info["history"]) == 1
    assert set(info["history"][0]) >= {"epoch", "seconds", "loss", "accuracy", "val_loss", "val_accuracy"}
    assert info["final_val_accuracy"] == info["history"][-1]["val_accuracy"]
    assert info["train_samples_used"] == 64


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "must be at least 1"),
        (["--batch-size", "-3"], "must be at least 1"),
        (["--batch-size", "10000000"], "larger than the supported maximum"),
        (["--maxlen", "0"], "must be at least 1"),
        (["--epochs", "0"], "must be at least 1"),
        (["--profile", "huge"], "invalid choice"),
        (["--device", "tpu"], "invalid choice"),
        (["--dataset", "imdb"], "invalid choice"),
        (["--variant", "fp8"], "invalid choice"),
    ],
)
def test_bad_options_fail_fast_with_a_clear_message(args, message):
    proc = run_bench(*args)
    assert proc.returncode == 4 and message in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unknown_backend_is_a_usage_error():
    proc = run_bench(*TINY, env={"KERAS_BACKEND": "theano"})
    assert proc.returncode == 4 and "unknown Keras backend 'theano'" in proc.stderr


def test_gpu_requested_without_gpu_fails_clearly():
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
