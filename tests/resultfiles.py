"""Result files shaped like real ones, built from the records of ``bench.results`` and written by its writer.

Tests build runs from a few numbers instead of running Keras: times are seconds, as in real files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from bench import results
from bench.packages import set_id
from bench.results import AccuracyMetrics, Context, Kernel, Memory, PackageSet, Record, RunInfo, StepMetrics

KINDS = ("train_step", "predict_step", "accuracy")


def _stats(median: float, iqr: float, rounds: int, data: list | None = None) -> dict:
    if data is not None:  # real round times: the statistics pytest-benchmark would compute from them
        median, rounds = float(np.median(data)), len(data)
        q1, q3 = (float(q) for q in np.percentile(data, [25, 75]))
        iqr = q3 - q1
        return {"min": min(data), "max": max(data), "mean": float(np.mean(data)), "stddev": float(np.std(data)),
                "rounds": rounds, "median": median, "iqr": iqr, "q1": q1, "q3": q3, "iqr_outliers": 0,
                "stddev_outliers": 0, "outliers": "0;0", "ld15iqr": q1, "hd15iqr": q3, "ops": 1 / float(np.mean(data)),
                "total": float(np.sum(data)), "iterations": 1, "data": list(data)}
    q1, q3 = median - iqr / 2, median + iqr / 2
    return {
        "min": q1 - iqr / 2, "max": q3 + iqr / 2, "mean": median, "stddev": iqr / 1.35, "rounds": rounds,
        "median": median, "iqr": iqr, "q1": q1, "q3": q3, "iqr_outliers": 0, "stddev_outliers": 0,
        "outliers": "0;0", "ld15iqr": q1, "hd15iqr": q3, "ops": 1 / median, "total": median * rounds,
        "iterations": 1,
    }


def make_result(backend: str = "jax", device: str = "cpu", *, profile: str = "quick", dataset: str = "synthetic",
                batch_size: int = 32, maxlen: int = 200, train: tuple[float, float] = (0.100, 0.004),
                predict: tuple[float, float] = (0.020, 0.001), epoch: tuple[float, float] = (5.0, 0.0),
                accuracy: float | None = 0.80, history: list[dict] | None = None, status: str = "ok",
                finished: bool = True, started: str = "2026-11-29T08:00:00+00:00", keras: str = "3.15.1",
                device_name: str = "Test CPU", kinds: tuple[str, ...] = KINDS, rounds: int = 30,
                target_accuracy: float = 0.70, data: dict | None = None, run_id: str = "", repeat_index: int = 0,
                fingerprint: dict | None = None, packages: list[str] | None = None,
                environment: str = "project venv") -> dict:
    """One run's result document; ``train``/``predict``/``epoch`` are (median, IQR) in seconds.

    ``data`` maps a kind to its round times (seconds), which then make its statistics; ``run_id`` and
    ``repeat_index`` make the file one process of a repeated run; ``fingerprint`` is the machine's;
    ``packages`` ("name==version", ...) the process's package set, made as ``environment`` says.
    """
    label = f"{backend}-{device}"
    settings = {"profile": profile, "variant": "default", "dataset_requested": dataset, "device_requested": "auto",
                "batch_size": batch_size, "maxlen": maxlen, "epochs": 1, "threads": 2, "seed": 1337,
                "model_config": {}}
    context = Context(
        backend=backend, backend_version="1.0.0", keras=keras, device=device, device_name=device_name,
        profile=profile, variant="default", dataset_requested=dataset, device_requested="auto",
        batch_size=batch_size, maxlen=maxlen, epochs=1, threads=2, seed=1337, model_config={},
        dataset={"source": dataset, "train_samples": 5000, "test_samples": 2000, "maxlen": maxlen},
        jit_compile=True, kernel=Kernel("generic (lax.scan)"), memory=Memory(host_rss_growth_mib=1.0),
    )
    if history is None and accuracy is not None:
        history = [{"epoch": 1, "seconds": epoch[0], "loss": 0.5, "accuracy": accuracy, "val_loss": 0.5,
                    "val_accuracy": accuracy}]
    benchmarks = []
    for kind in kinds:
        if kind == "accuracy":
            stats = _stats(*epoch, rounds=max(1, len(history or [])))
            reached = accuracy is not None and accuracy >= target_accuracy
            metrics = AccuracyMetrics(status=status, history=history or [], final_val_accuracy=accuracy,
                                      target_accuracy=target_accuracy, time_to_accuracy_s=epoch[0] if reached else None,
                                      train_samples_used=4992, val_samples_used=1984, first_epoch_s=epoch[0])
        else:
            median, iqr = train if kind == "train_step" else predict
            stats = _stats(median, iqr, rounds, (data or {}).get(kind))
            median = stats["median"]
            metrics = StepMetrics(staged_batches=8, first_step_s=1.5, samples_per_s=batch_size / median,
                                  plain_loop_median_s=median, harness_vs_plain=1.0)
        benchmarks.append({
            "group": None, "name": f"test_{kind}[{label}]",
            "fullname": f"bench/test_{kind}.py::test_{kind}[{label}]", "params": {"target": label},
            "param": label, "extra_info": Record(kind, context, metrics).to_json(),
            "options": {"timer": "perf_counter"}, "stats": stats,
        })
    run = RunInfo(backend=backend, device=device, device_name=device_name, settings=settings, started=started,
                  updated=started, finished=finished, exitstatus=0 if finished else None, argv=[], run_id=run_id,
                  repeat_index=repeat_index, fingerprint=fingerprint or {},
                  packages=None if packages is None else PackageSet(set_id(packages), sorted(packages), environment))
    return {
        "machine_info": {"node": "test", "kerasbench": {"backend": backend, "keras": keras, backend: "1.0.0"}},
        "commit_info": {"id": "0" * 40, "dirty": False},
        "benchmarks": benchmarks,
        "datetime": started,
        "version": "5.3.1",
        "kerasbench": dataclasses.asdict(run),
    }


def write_result(folder: Path, document: dict, name: str | None = None) -> Path:
    """Write a document with the results writer, named like real files; returns the path."""
    block = document["kerasbench"]
    stamp = block["started"][:19].replace("-", "").replace(":", "")
    name = name or f"{block['backend']}-{block['device']}-{block['settings']['profile']}_{stamp}_1.json"
    path = folder / name
    body = {k: v for k, v in document.items() if k != "kerasbench"}
    packages = block.get("packages")
    results.write(path, body, RunInfo(**{**block, "packages": PackageSet(**packages) if packages else None}))
    return path
