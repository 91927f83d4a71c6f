"""A factory for result documents shaped like real ones (pytest-benchmark JSON + a kerasbench block).

Tests build runs from a few numbers instead of running Keras: times are seconds, as in real files.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.results import SCHEMA_VERSION

KINDS = ("train_step", "predict_step", "accuracy")


def _stats(median: float, iqr: float, rounds: int) -> dict:
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
                target_accuracy: float = 0.70) -> dict:
    """One run's result document; ``train``/``predict``/``epoch`` are (median, IQR) in seconds."""
    label = f"{backend}-{device}"
    settings = {"profile": profile, "dataset_requested": dataset, "device_requested": "auto",
                "batch_size": batch_size, "maxlen": maxlen, "epochs": 1, "threads": 2, "seed": 1337}
    common = {"backend": backend, "keras": keras, backend: "1.0.0", "device": device, "device_name": device_name,
              **settings, "dataset": {"source": dataset, "train_samples": 5000, "test_samples": 2000,
                                      "maxlen": maxlen}}
    if history is None and accuracy is not None:
        history = [{"epoch": 1, "seconds": epoch[0], "loss": 0.5, "accuracy": accuracy, "val_loss": 0.5,
                    "val_accuracy": accuracy}]
    benchmarks = []
    for kind in kinds:
        if kind == "accuracy":
            stats = _stats(*epoch, rounds=max(1, len(history or [])))
            extra = {**common, "status": status, "history": history or [], "final_val_accuracy": accuracy,
                     "target_accuracy": target_accuracy,
                     "time_to_accuracy_s": epoch[0] if accuracy is not None and accuracy >= target_accuracy else None}
        else:
            median, iqr = train if kind == "train_step" else predict
            stats = _stats(median, iqr, rounds)
            extra = {**common, "first_step_s": 1.5, "samples_per_s": batch_size / median}
        benchmarks.append({
            "group": None, "name": f"test_{kind}[{label}]",
            "fullname": f"bench/test_{kind}.py::test_{kind}[{label}]", "params": {"target": label},
            "param": label, "extra_info": extra, "options": {"timer": "perf_counter"}, "stats": stats,
        })
    return {
        "machine_info": {"node": "test", "kerasbench": {"backend": backend, "keras": keras, backend: "1.0.0"}},
        "commit_info": {"id": "0" * 40, "dirty": False},
        "benchmarks": benchmarks,
        "datetime": started,
        "version": "5.3.1",
        "kerasbench": {"schema_version": SCHEMA_VERSION, "backend": backend, "device": device,
                       "device_name": device_name, "settings": settings, "started": started, "updated": started,
                       "finished": finished, "exitstatus": 0 if finished else None, "argv": []},
    }


def write_result(folder: Path, document: dict, name: str | None = None) -> Path:
    """Write a document as a result file named like real ones; returns the path."""
    block = document["kerasbench"]
    stamp = block["started"][:19].replace("-", "").replace(":", "")
    name = name or f"{block['backend']}-{block['device']}-{block['settings']['profile']}_{stamp}_1.json"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(document, indent=2))
    return path
