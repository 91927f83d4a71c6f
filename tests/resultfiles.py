"""Result files shaped like real ones, built from the records of ``bench.results`` and written by its writer.

Tests build runs from a few numbers instead of running Keras: times are seconds, as in real files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from bench import results
from bench.packages import set_id
from bench.results import (
    AccuracyMetrics,
    Contention,
    Context,
    Equivalence,
    Kernel,
    Memory,
    PackageSet,
    Precision,
    Record,
    ReplicaLayout,
    Roofline,
    RunInfo,
    Scaling,
    StepMetrics,
)

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
                environment: str = "project venv", roofline: bool = False,
                contention: Contention | None = None, precision: Precision | None = None) -> dict:
    """One run's result document; ``train``/``predict``/``epoch`` are (median, IQR) in seconds.

    ``data`` maps a kind to its round times (seconds), which then make its statistics; ``run_id`` and
    ``repeat_index`` make the file one process of a repeated run; ``fingerprint`` is the machine's;
    ``packages`` ("name==version", ...) the process's package set, made as ``environment`` says;
    ``roofline`` gives each step record one (``roofline_of``: 5 GFLOP per step, a 10 ms compute bound);
    ``contention`` is every benchmark's record of other processes' CPU use (``busy``); ``precision`` the
    arithmetic the line's float32 work ran in.
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
        precision=precision,
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
                                      train_samples_used=4992, val_samples_used=1984, first_epoch_s=epoch[0],
                                      contention=contention)
        else:
            median, iqr = train if kind == "train_step" else predict
            stats = _stats(median, iqr, rounds, (data or {}).get(kind))
            median = stats["median"]
            metrics = StepMetrics(staged_batches=8, first_step_s=1.5, samples_per_s=batch_size / median,
                                  plain_loop_median_s=median, harness_vs_plain=1.0,
                                  roofline=roofline_of(median) if roofline else None, contention=contention)
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


def roofline_of(median_s: float) -> Roofline:
    """A step's roofline record: 5 GFLOP and 0.5 GB per step against 500 GFLOP/s and 100 GB/s ceilings."""
    bounds = {"compute": 0.010, "recurrence": 0.004, "memory": 0.005, "dispatch": 1e-4}
    return Roofline(flops=5e9, matmul_flops=4.9e9, bytes=5e8, intensity=10.0, counted_matmul_flops=4.9e9,
                    counter="test counter", counted_vs_analytic=1.0, dispatches=1, dispatch_how="one call",
                    achieved_flops_per_s=5e9 / median_s,
                    ceilings={"gemm_flops_per_s": 5e11, "triad_bytes_per_s": 1e11, "cell_gemm_s": 1e-5,
                              "dispatch_s": 1e-4},
                    bounds_s=bounds, binding="compute", share=0.010 / median_s)


def busy(share: float, threshold: float = 0.10) -> Contention:
    """A contention record: other processes took ``share`` of 2 CPUs over 10 s of timed rounds."""
    return Contention(wall_s=10.0, cpus=2, other_cpu_s=20.0 * share, steal_s=0.0, share=share,
                      contended=share >= threshold, threshold=threshold, source="test")


def phases_of(step_s: float) -> dict:
    """A train step's phases (40% forward, 40% backward, 15% optimizer, 5% overhead) as a record writes them."""
    return {"forward_s": 0.4 * step_s, "backward_s": 0.4 * step_s, "optimizer_s": 0.15 * step_s,
            "overhead_s": 0.05 * step_s, "step_s": step_s, "measured_median_s": step_s, "tolerance": 0.1,
            "adds_up": True, "rounds": 5, "op_families_s": {"matmul": 0.5 * step_s, "element-wise": 0.3 * step_s},
            "profiler": "test profiler", "measure_s": 1.0}


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


def layout_document(layout: str, efficiency: float, *, simulated: bool = True, scaling: str = "weak",
                    train: tuple[float, float] = (0.100, 0.004)) -> dict:
    """A jax train-step result of a data-parallel layout ("dp2", "mp4"), as the engine's describe writes it."""
    mode, n = ("devices" if layout.startswith("dp") else "processes"), int(layout[2:])
    document = make_result("jax", kinds=("train_step",), train=train, batch_size=32 * n)
    bench = document["benchmarks"][0]
    bench["name"] = bench["name"].replace("]", f"-{layout}]")
    bench["extra_info"]["context"]["layout"] = dataclasses.asdict(ReplicaLayout(
        engine="keras.distribution.DataParallel", mode=mode, replicas=n, processes=1 if mode == "devices" else n,
        scaling=scaling, per_replica_batch=32, global_batch=32 * n, simulated=simulated,
        simulated_why="2 XLA host-platform devices share 2 cores" if simulated else None,
    ))
    ranks = n if mode == "processes" else 1
    scaled = Scaling(slowest_replica_step_s=train[0], rank_step_s=[train[0]] * ranks, reference_batch=32,
                     reference_step_s=train[0] * n * efficiency / n, efficiency=efficiency)
    equivalence = Equivalence(steps=2, ranks_agree=True, max_weight_diff_vs_one_device=3e-8)
    bench["extra_info"]["metrics"].update(samples_per_s=32 * n / train[0], scaling=dataclasses.asdict(scaled),
                                          equivalence=dataclasses.asdict(equivalence))
    return document


def seeded_run(backend: str, finals: list[float], *, seconds: float | list[float] = 10.0,
               first: list[float] | None = None, started: str = "2026-11-29T08:00:00+00:00",
               seeds: list[int] | None = None, dataset_info: dict | None = None, status: str = "ok",
               **kwargs) -> dict:
    """A run whose accuracy benchmark ran once per seed: 2 epochs, epoch 1 at ``first`` (default 0.75), final
    val_accuracy ``finals``; ``seconds`` per epoch (one for all seeds, or one per seed); target 0.70."""
    import copy

    document = make_result(backend, kinds=("accuracy",), started=started, target_accuracy=0.70, **kwargs)
    [template] = document["benchmarks"]
    label = template["param"]
    first = first or [0.75] * len(finals)
    per_seed = seconds if isinstance(seconds, list) else [seconds] * len(finals)
    benchmarks = []
    for seed, final, early, epoch_s in zip(seeds or range(len(finals)), finals, first, per_seed, strict=False):
        bench = copy.deepcopy(template)
        bench["name"] = f"test_accuracy[{label}-seed{seed}]"
        info = bench["extra_info"]
        info["context"]["seed"] = seed
        info["context"]["epochs"] = 2
        if dataset_info:
            info["context"]["dataset"] = dataset_info
        history = [{"epoch": e, "seconds": epoch_s, "loss": 0.5, "accuracy": v, "val_loss": 0.4 + e / 10,
                    "val_accuracy": v} for e, v in ((1, early), (2, final))]
        reached = next((i for i, h in enumerate(history) if h["val_accuracy"] >= 0.70), None)
        info["metrics"].update(status=status, history=history if status == "ok" else [],
                               final_val_accuracy=final if status == "ok" else None,
                               time_to_accuracy_s=None if reached is None else epoch_s * (reached + 1))
        benchmarks.append(bench)
    document["benchmarks"] = benchmarks
    return document
