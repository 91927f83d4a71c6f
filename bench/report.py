"""Tables from result files: markdown (the comparison), CSV (every benchmark), JSON (both).

Runs are compared only with like (``results.GroupKey``: profile, data source, batch size, maxlen,
device kind), one table per group. Within a table there is one line per (backend, device name,
Keras version, variant); when several files hold that line, the newest run (by its start time)
is shown and older ones are counted (CSV and JSON keep every run). A run that did not finish is
marked "(incomplete)". Plots are in ``bench.plots``; the sweep's scaling tables in ``bench.scaling``.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import parity, scaling, stats
from bench.distributed.layout import layout_name as distributed_name
from bench.results import REPORT_MARKER, GroupKey, Result, json_text, write_json_atomic, write_text_atomic
from bench.selection import aggregate, by_group, latest, started_order
from bench.tables import MISSING, data_description, fmt, fmt_ms, speed_text, table

FORMATS = ("md", "csv", "json")


# ------------------------------------------------------------------------------------ summarizing

@dataclass
class Line:
    """One line of a comparison table: one backend (device, Keras version, variant) in one group."""

    backend: str
    backend_version: str
    device_name: str
    keras: str
    variant: str
    incomplete: bool
    files: list[str]
    train_median_ms: float | None = None
    train_iqr_ms: float | None = None
    predict_median_ms: float | None = None
    predict_iqr_ms: float | None = None
    train_samples_per_s: float | None = None
    first_step_s: float | None = None
    harness_vs_plain: float | None = None
    has_accuracy: bool = False
    accuracy_status: str | None = None
    final_val_accuracy: float | None = None
    target_accuracy: float | None = None
    time_to_accuracy_s: float | None = None
    val_accuracy_per_epoch: tuple = ()
    accuracy_seeds: int = 1  # seeds of the accuracy benchmark in this run; several: the cell shows their mean
    data_source: str | None = None  # data_description of the accuracy benchmark's data
    lstm_kernel: str | None = None
    jit_compile: str | None = None
    keras_vs_native_train: float | None = None
    keras_vs_native_predict: float | None = None
    # Set when Keras and the native reference ran different LSTM kernel families ("Keras loop, native onednn").
    native_kernel_differs: str | None = None
    train_energy_j_per_step: float | None = None  # from a hardware counter (StepMetrics.energy_source), else None
    train_energy_source: str | None = None
    speed_ratio: float | None = None  # train median over the group's fastest
    # Repeats (--repeat N): processes per step benchmark and the 95% interval of the median of their medians.
    processes: int = 1
    train_ci_ms: tuple[float, float] | None = None
    predict_ci_ms: tuple[float, float] | None = None
    # Tail latency (ms): percentiles of the timed rounds (all processes' rounds pooled).
    train_percentiles_ms: tuple | None = None  # (p50, p90, p99)
    predict_percentiles_ms: tuple | None = None
    serve_percentiles_ms: tuple | None = None  # batch-1 serving (test_serve_batch1)
    serve_queries: int | None = None  # per process


def summarize(results: Iterable[Result]) -> list[tuple[GroupKey, list[Line]]]:
    """Per group, one Line per table line (newest run only), fastest train step first."""
    summary = []
    shown = latest(results)
    serving = [r for r in shown if r.kind == "serve_batch1"]
    grouped = by_group([r for r in shown if r.kind != "serve_batch1"])
    for r in serving:
        # Batch-1 serving is its own group (batch size 1): shown on the line it was measured beside.
        beside = r.group._replace(batch_size=next((g.batch_size for g in grouped if g._replace(batch_size=1) ==
                                                   r.group._replace(batch_size=1)), 1))
        grouped.setdefault(beside, []).append(r)
    for group, members in sorted(grouped.items(), key=lambda item: tuple(str(v) for v in item[0])):
        kinds_per_line: dict[tuple, dict[str, Result]] = {}
        seeds_per_line: dict[tuple, list[Result]] = {}
        for r in members:
            kinds_per_line.setdefault(r.line, {})[r.kind] = r
            if r.kind == "accuracy":
                seeds_per_line.setdefault(r.line, []).append(r)
        lines = [_with_seeds(_line(kinds), seeds_per_line.get(key, [])) for key, kinds in kinds_per_line.items()]
        lines = [_with_processes(line, [r for r in members if r.line == key])
                 for line, key in zip(lines, kinds_per_line, strict=True)]
        medians = [line.train_median_ms for line in lines if line.train_median_ms]
        fastest = min(medians) if medians else None
        for line in lines:
            line.speed_ratio = line.train_median_ms / fastest if fastest and line.train_median_ms else None
        lines.sort(key=lambda s: (s.speed_ratio is None, s.speed_ratio or 0, s.backend))
        summary.append((group, lines))
    return summary


def _line(kinds: dict[str, Result]) -> Line:
    train, predict, acc = kinds.get("train_step"), kinds.get("predict_step"), kinds.get("accuracy")
    describing = train or predict or acc or next(iter(kinds.values()))  # Keras's own benchmarks describe the line
    c = describing.context
    line = Line(backend=c.backend, backend_version=str(c.backend_version), device_name=c.device_name,
                keras=c.keras, variant=c.variant, incomplete=not all(r.run.finished for r in kinds.values()),
                files=sorted({r.file for r in kinds.values()}), lstm_kernel=c.lstm_kernel,
                jit_compile=str(c.jit_compile))
    if train:
        line.train_median_ms, line.train_iqr_ms = train.median_ms, train.ms("iqr")
        line.train_samples_per_s, line.first_step_s = train.step.samples_per_s, train.step.first_step_s
        line.harness_vs_plain = train.step.harness_vs_plain
    if predict:
        line.predict_median_ms, line.predict_iqr_ms = predict.median_ms, predict.ms("iqr")
    if acc:
        a = acc.accuracy
        line.has_accuracy, line.accuracy_status = True, a.status
        line.final_val_accuracy, line.target_accuracy = a.final_val_accuracy, a.target_accuracy
        line.time_to_accuracy_s = a.time_to_accuracy_s
        line.val_accuracy_per_epoch = tuple(h.get("val_accuracy") for h in a.history)
    line.keras_vs_native_train = _ratio(train, kinds.get("native_train_step"))
    line.keras_vs_native_predict = _ratio(predict, kinds.get("native_predict_step"))
    line.native_kernel_differs = _kernels_differ(train or predict, kinds.get("native_train_step")
                                                 or kinds.get("native_predict_step"))
    if train:
        line.train_energy_j_per_step = train.step.energy_j_per_step
        line.train_energy_source = train.step.energy_source
    return line


def _kernels_differ(keras_result: Result | None, native_result: Result | None) -> str | None:
    """'Keras loop, native onednn' when the two ran different LSTM kernel families (as recorded), else None."""
    if keras_result is None or native_result is None:
        return None
    ours, theirs = keras_result.context.lstm_kernel_family, native_result.context.lstm_kernel_family
    if "unknown" in (ours, theirs) or ours == theirs:
        return None
    return f"Keras {ours}, native {theirs}"


def _with_seeds(line: Line, accuracy: list[Result]) -> Line:
    """Several seeds of the accuracy benchmark in one run: per epoch, the mean over the seeds that trained."""
    if accuracy:
        line.data_source = data_description(accuracy[0].context.dataset)
    per_seed: dict[int, Result] = {}  # a seed repeated (--repeat) counts once: its newest process
    for r in sorted(accuracy, key=started_order):
        per_seed[r.context.seed] = r
    trained = [r.accuracy for r in per_seed.values() if r.accuracy.status == "ok" and r.accuracy.history]
    line.accuracy_seeds = len(per_seed)
    if len(accuracy) > 1 and trained:
        epochs = min(len(a.history) for a in trained)
        line.val_accuracy_per_epoch = tuple(
            sum(a.history[i]["val_accuracy"] for a in trained) / len(trained) for i in range(epochs))
        line.final_val_accuracy = line.val_accuracy_per_epoch[-1] if epochs else None
        line.accuracy_status = "ok"
    return line


def _with_processes(line: Line, members: Sequence[Result]) -> Line:
    """Step benchmarks of several processes (one run, --repeat N): medians of medians, intervals, tails, N."""
    by_kind: dict[str, list[Result]] = {}
    for r in members:
        by_kind.setdefault(r.kind, []).append(r)
    train, predict = aggregate(by_kind.get("train_step", [])), aggregate(by_kind.get("predict_step", []))
    serve = aggregate(by_kind.get("serve_batch1", []))
    interval = lambda a: None if a is None or a.low_ms is None else (a.low_ms, a.high_ms)
    if train:
        line.train_median_ms, line.train_ci_ms = train.median_ms, interval(train)
        line.train_percentiles_ms = train.percentiles_ms
        line.train_samples_per_s = by_kind["train_step"][0].context.batch_size / train.median_ms * 1e3
    if predict:
        line.predict_median_ms, line.predict_ci_ms = predict.median_ms, interval(predict)
        line.predict_percentiles_ms = predict.percentiles_ms
    if serve:
        line.serve_percentiles_ms = serve.percentiles_ms
        line.serve_queries = by_kind["serve_batch1"][0].stats.rounds
    line.processes = max((a.processes for a in (train, predict, serve) if a), default=1)
    if line.processes > 1:
        for keras_side, kind, attribute in ((train, "train_step", "keras_vs_native_train"),
                                            (predict, "predict_step", "keras_vs_native_predict")):
            native_side = aggregate(by_kind.get(f"native_{kind}", []))
            if keras_side and native_side and native_side.median_ms:
                setattr(line, attribute, keras_side.median_ms / native_side.median_ms)
    return line


def _ratio(keras_result: Result | None, native_result: Result | None) -> float | None:
    """Keras median over the native reference's median: what Keras's abstraction costs."""
    if keras_result and native_result and keras_result.median_ms and native_result.median_ms:
        return keras_result.median_ms / native_result.median_ms
    return None


# -------------------------------------------------------------------------------------- rendering

HEADERS = ("Backend", "Keras", "Device", "Train ms/step", "Train IQR ms", "Predict ms/batch", "Train samples/s",
           "First step s", "val_accuracy by epoch", "Time to acc. s", "Speed vs fastest", "LSTM kernel", "jit",
           "Harness/plain", "Keras/native train", "Keras/native predict", "Processes",
           "Train p50/p90/p99 ms", "Predict p50/p90/p99 ms", "Serve batch-1 p50/p90/p99 ms", "Train J/step")


def cells(s: Line) -> list[str]:
    """The table cells of one line, in HEADERS order."""
    backend = f"{s.backend} {s.backend_version}"
    if s.variant != "default":
        backend += f" [{s.variant}]"
    if s.incomplete:
        backend += " (incomplete)"
    if s.accuracy_status and s.accuracy_status != "ok":
        accuracy = "failed"
    else:
        per_epoch = [fmt(v, ".3f") for v in s.val_accuracy_per_epoch]
        accuracy = " → ".join(per_epoch) if per_epoch else fmt(s.final_val_accuracy, ".3f")
    reached = fmt(s.time_to_accuracy_s, ".1f")
    if s.has_accuracy and s.time_to_accuracy_s is None and accuracy != "failed":
        reached = "not reached"
    if s.accuracy_seeds > 1:
        accuracy = f"mean of {s.accuracy_seeds} seeds: {accuracy} (see parity)"
        reached = "see parity"
    return [backend, s.keras, s.device_name, fmt_ms(s.train_median_ms), fmt_ms(s.train_iqr_ms),
            fmt_ms(s.predict_median_ms), fmt(s.train_samples_per_s, ".0f"), fmt(s.first_step_s, ".2f"),
            accuracy, reached, speed_text(s.speed_ratio), s.lstm_kernel or MISSING, s.jit_compile or MISSING,
            fmt(s.harness_vs_plain, ".3f"), native_text(s.keras_vs_native_train, s),
            native_text(s.keras_vs_native_predict, s), processes_text(s), tail_text(s.train_percentiles_ms),
            tail_text(s.predict_percentiles_ms), tail_text(s.serve_percentiles_ms, s.serve_queries),
            energy_text(s)]


def energy_text(s: Line) -> str:
    """Joules per train step from a hardware counter; 'unavailable' where the machine has none."""
    if s.train_energy_j_per_step is not None:
        return format(s.train_energy_j_per_step, ".3g")
    return "unavailable" if s.train_energy_source else MISSING


def native_text(ratio: float | None, s: Line) -> str:
    """'6.85', or '6.85 (different kernels: Keras loop, native onednn)' where the two ran different kernels."""
    text = fmt(ratio, ".2f")
    if ratio is None or not s.native_kernel_differs:
        return text
    return f"{text} (different kernels: {s.native_kernel_differs})"


def processes_text(s: Line) -> str:
    """'3 (train 95% CI 128-139)': processes per benchmark, and the train median's interval over them."""
    if s.train_ci_ms is None:
        return str(s.processes)
    low, high = s.train_ci_ms
    return f"{s.processes} (train 95% CI {fmt_ms(low)}-{fmt_ms(high)})"


def tail_text(percentiles_ms: tuple | None, queries: int | None = None) -> str:
    if percentiles_ms is None:
        return MISSING
    text = " / ".join(fmt_ms(v) for v in percentiles_ms)
    return f"{text} ({queries} queries)" if queries else text


def render_markdown(results: Sequence[Result], warnings: Sequence[str] = (), margin: float | None = None) -> str:
    """The comparison tables, one per group, plus notes on what was left out.

    When a group holds several seeds per backend, a parity section follows (``bench.parity``,
    its equivalence margin ``margin``, default 1 point of val_accuracy).
    """
    out = ["# kerasbench report", ""]
    sweep = [r for r in results if scaling.is_sweep(r)]
    results = [r for r in results if not scaling.is_sweep(r)]  # sweep points get scaling tables instead
    layouts = [r for r in results if r.distributed]  # --devices/--processes runs get their own section
    results = [r for r in results if not r.distributed]
    shown = latest(results)
    if not shown and not sweep and not layouts:
        out += ["No results.", ""]
    for group, lines in summarize(shown):
        out += [f"## {group.label}", "", table(HEADERS, [cells(s) for s in lines]), ""]
        targets = {s.target_accuracy for s in lines if s.target_accuracy is not None}
        notes = ["Medians of the timed rounds; the first (compile) step is timed apart as \"First step\"."]
        if any(s.processes > 1 for s in lines):
            notes.append("Several processes per benchmark (--repeat): each time is the median of the process "
                         "medians, with its 95% interval by bootstrap over processes.")
        notes.append(f"Percentiles: {stats.PERCENTILE_METHOD}, over the timed rounds.")
        if targets:
            notes.append("Time to accuracy: training seconds until val_accuracy reached "
                         + " / ".join(f"{t:g}" for t in sorted(targets)) + ".")
        sources = sorted({s.data_source for s in lines if s.data_source})
        if sources:
            notes.append(f"Accuracy data: {'; '.join(sources)}.")
        out += [" ".join(notes), ""]
    out += _parity_section(results, margin)
    out += scaling.render(sweep)
    out += data_parallel_section(layouts)
    older = len({r.file for r in results} - {r.file for r in shown})
    if older:
        out += [f"_{older} older result file(s) not shown: each line is the newest run "
                "(`--format csv` lists every run)._", ""]
    if warnings:
        out += ["## Skipped files", ""] + [f"- {w}" for w in warnings] + [""]
    return "\n".join(out)


DP_HEADERS = ("Backend", "Device", "Engine", "Layout", "Scaling", "N", "Batch per replica / global",
              "Slowest replica ms/step", "Global samples/s", "1-device samples/s", "Efficiency",
              "Max weight diff vs 1 device", "Devices")


def layout_name(r: Result) -> str:
    """"dp4" (N devices, one process) or "mp2" (N processes), from the benchmark's layout."""
    return distributed_name(r.layout.get("mode"), r.layout.get("replicas", 1))


def data_parallel_rows(results: Iterable[Result]) -> list[Result]:
    """The newest data-parallel train-step results, one per benchmark and group, by backend, scaling and N."""
    steps = latest([r for r in results if r.distributed and r.kind == "train_step" and r.step],
                   key=lambda r: (r.name, r.group, r.line))
    return sorted(steps, key=lambda r: (r.backend, r.context.device_name, str(r.layout.get("scaling")),
                                        r.layout.get("mode") or "", r.step.replicas))


def data_parallel_section(results: Sequence[Result]) -> list[str]:
    """Data-parallel runs (--devices/--processes): the slowest replica's step, global samples/s, efficiency."""
    rows = data_parallel_rows(results)
    accuracy = latest([r for r in results if r.distributed and r.accuracy], key=lambda r: (r.name, r.group, r.line))
    if not rows and not accuracy:
        return []
    simulated = any(r.simulated for r in (*rows, *accuracy))
    out = ["## Data-parallel scaling" + (" (simulated devices)" if simulated else ""), ""]
    if rows:
        cells_ = []
        for r in rows:
            m, layout = r.step, r.layout
            reference = m.reference_batch / m.reference_step_s if m.reference_step_s else None
            cells_.append([
                f"{r.backend} {r.context.backend_version}", r.context.device_name, str(layout.get("engine")),
                layout_name(r), str(layout.get("scaling")), str(m.replicas),
                f"{m.per_replica_batch} / {r.context.batch_size}",
                fmt_ms(m.slowest_replica_step_s * 1e3 if m.slowest_replica_step_s else None),
                fmt(m.samples_per_s, ".0f"), fmt(reference, ".0f"), fmt(m.scaling_efficiency, ".2f"),
                fmt(m.max_weight_diff_vs_one_device, ".1e"), "simulated" if r.simulated else "real",
            ])
        out += [table(DP_HEADERS, cells_), ""]
        out += ["Slowest replica: per step the longest of the processes' step times, then the median over steps. "
                "Efficiency: global samples/s over N times the samples/s of one device, timed in the same run (rank "
                "0) at the batch one replica would get alone: the per-replica batch under weak scaling, the global "
                "batch under strong scaling. Max weight diff: after 2 data-parallel steps against 2 steps on one "
                "device on the same global batches, before the timing.", ""]
    if accuracy:
        headers = ("Backend", "Device", "Layout", "Scaling", "Global batch", "First epoch s", "Final val_accuracy",
                   "Devices")
        out += [table(headers, [[f"{r.backend} {r.context.backend_version}", r.context.device_name, layout_name(r),
                                 str(r.layout.get("scaling")), str(r.context.batch_size),
                                 fmt(r.accuracy.first_epoch_s, ".1f"), fmt(r.accuracy.final_val_accuracy, ".3f"),
                                 "simulated" if r.simulated else "real"] for r in accuracy]), ""]
    whys = sorted({str(r.layout.get("simulated_why")) for r in (*rows, *accuracy) if r.simulated})
    if whys:
        out += ["Simulated: " + " ".join(f"{why}." for why in whys), ""]
    return out


def _parity_section(results: Sequence[Result], margin: float | None) -> list[str]:
    groups = [g for g in parity.analyze(results, **({} if margin is None else {"margin": margin}))
              if g.several_seeds]
    if not groups:
        return []
    return ["## Does accuracy hold across backends?", "", *parity.render_markdown(groups, heading="###")]


CSV_FIELDS = ["file", "name", "kind", "backend", "device", "device_name", "profile", "dataset", "batch_size",
              "maxlen", "keras", "backend_version", "finished", "started", "median_ms", "iqr_ms", "q1_ms", "q3_ms",
              "mean_ms", "stddev_ms", "min_ms", "max_ms", "rounds", "first_step_s", "samples_per_s",
              "final_val_accuracy", "target_accuracy", "time_to_accuracy_s", "status", "variant", "jit_compile",
              "lstm_kernel", "harness_vs_plain", "seed", "run_id", "repeat_index", "p50_ms", "p90_ms", "p99_ms",
              "ci_half_width", "stop_reason", "measure_s", "lstm_kernel_family", "lstm_kernel_check",
              "energy_j_per_step",
              "samples_per_joule", "energy_source", "layout", "replicas", "scaling", "simulated",
              "slowest_replica_ms", "scaling_efficiency", "max_weight_diff_vs_one_device"]


def flat(r: Result) -> dict:
    """One benchmark as one flat dict of CSV_FIELDS (times in ms, per-epoch history left out)."""
    c, step, acc = r.context, r.step, r.accuracy
    row = {"file": r.file, "name": r.name, "kind": r.kind, "backend": c.backend, "device": c.device,
           "device_name": c.device_name, "profile": c.profile, "dataset": c.dataset["source"],
           "batch_size": c.batch_size, "maxlen": c.maxlen, "keras": c.keras, "backend_version": c.backend_version,
           "finished": r.run.finished, "started": r.run.started, "variant": c.variant, "jit_compile": c.jit_compile,
           "lstm_kernel": c.lstm_kernel, "rounds": r.stats and r.stats.rounds, "seed": c.seed}
    row |= {f"{stat}_ms": r.ms(stat) for stat in ("median", "iqr", "q1", "q3", "mean", "stddev", "min", "max")}
    row |= {"first_step_s": step and step.first_step_s, "samples_per_s": step and step.samples_per_s,
            "harness_vs_plain": step and step.harness_vs_plain}
    row |= {"run_id": r.run.run_id, "repeat_index": r.run.repeat_index, "ci_half_width": step and step.ci_half_width,
            "stop_reason": step and step.stop_reason, "measure_s": step and step.measure_s}
    row |= {f"{q}_ms": getattr(step, f"{q}_s") * 1e3 if step and getattr(step, f"{q}_s") is not None else None
            for q in ("p50", "p90", "p99")}
    row |= {"final_val_accuracy": acc and acc.final_val_accuracy, "target_accuracy": acc and acc.target_accuracy,
            "time_to_accuracy_s": acc and acc.time_to_accuracy_s, "status": acc and acc.status}
    row |= {"lstm_kernel_family": c.lstm_kernel_family, "lstm_kernel_check": c.lstm_kernel_check,
            "energy_j_per_step": step and step.energy_j_per_step, "samples_per_joule": step and step.samples_per_joule,
            "energy_source": step and step.energy_source}
    row |= {"layout": layout_name(r) if r.distributed else "single", "replicas": r.layout.get("replicas", 1),
            "scaling": r.layout.get("scaling"), "simulated": r.simulated,
            "slowest_replica_ms": step.slowest_replica_step_s * 1e3 if step and step.slowest_replica_step_s else None,
            "scaling_efficiency": step and step.scaling_efficiency,
            "max_weight_diff_vs_one_device": step and step.max_weight_diff_vs_one_device}
    return row


def render_csv(results: Sequence[Result]) -> str:
    """Every run's every benchmark, one line each."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        # Empty for missing and for non-finite numbers: no NaN/Infinity tokens in any file kerasbench writes.
        writer.writerow({k: "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v
                         for k, v in flat(r).items()})
    return buffer.getvalue()


def report_document(results: Sequence[Result], warnings: Sequence[str] = (), margin: float | None = None) -> dict:
    """The JSON report: the comparison tables, every benchmark (flat, plus its history), parity, the warnings."""
    return {
        REPORT_MARKER: 1,
        "groups": [{"key": group._asdict(), "label": group.label, "lines": [asdict(line) for line in lines]}
                   for group, lines in summarize(results)],
        "rows": [{**flat(r), "history": r.accuracy.history if r.accuracy else []} for r in results],
        "parity": parity.to_json(parity.analyze(results, **({} if margin is None else {"margin": margin}))),
        "warnings": list(warnings),
    }


def render(results: Sequence[Result], fmt_name: str = "md", warnings: Sequence[str] = (),
           margin: float | None = None) -> str:
    if fmt_name == "md":
        return render_markdown(results, warnings, margin)
    if fmt_name == "csv":
        return render_csv(results)
    if fmt_name == "json":
        return json_text(report_document(results, warnings, margin))
    raise ValueError(f"unknown format {fmt_name!r}; choose one of {', '.join(FORMATS)}")


def write_report(results: Sequence[Result], warnings: Sequence[str] = (), fmt_name: str = "md",
                 output: str | os.PathLike | None = None, margin: float | None = None) -> str:
    """Render the report; when ``output`` is given, also write it there atomically. Returns the text."""
    text = render(results, fmt_name, warnings, margin)
    if output is not None:
        if fmt_name == "json":
            write_json_atomic(Path(output), report_document(results, warnings, margin))
        else:
            write_text_atomic(Path(output), text)
    return text
