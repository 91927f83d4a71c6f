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
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import scaling
from bench.results import REPORT_MARKER, GroupKey, Result, write_json_atomic, write_text_atomic

FORMATS = ("md", "csv", "json")
MISSING = "—"


# -------------------------------------------------------------------------------- selecting results

def started_order(result: Result) -> tuple[float, str]:
    """Sort key: run start time, then file name (files are named by start time too)."""
    try:
        stamp = datetime.fromisoformat(result.run.started).timestamp()
    except (ValueError, TypeError, OverflowError, OSError):
        stamp = float("-inf")
    return stamp, result.file


def latest(results: Iterable[Result], key: Callable[[Result], Any] | None = None) -> list[Result]:
    """Keep, per ``key`` (default: group + table line), only the results of the newest file."""
    key = key or (lambda r: (r.group, r.line))
    newest: dict[Any, Result] = {}
    results = list(results)
    for r in results:
        k = key(r)
        if k not in newest or started_order(r) > started_order(newest[k]):
            newest[k] = r
    return [r for r in results if newest[key(r)].file == r.file]


def by_group(results: Iterable[Result]) -> dict[GroupKey, list[Result]]:
    groups: dict[GroupKey, list[Result]] = {}
    for r in results:
        groups.setdefault(r.group, []).append(r)
    return dict(sorted(groups.items(), key=lambda item: tuple(str(v) for v in item[0])))


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
    lstm_kernel: str | None = None
    jit_compile: str | None = None
    keras_vs_native_train: float | None = None
    keras_vs_native_predict: float | None = None
    speed_ratio: float | None = None  # train median over the group's fastest


def summarize(results: Iterable[Result]) -> list[tuple[GroupKey, list[Line]]]:
    """Per group, one Line per table line (newest run only), fastest train step first."""
    summary = []
    for group, members in by_group(latest(results)).items():
        kinds_per_line: dict[tuple, dict[str, Result]] = {}
        for r in members:
            kinds_per_line.setdefault(r.line, {})[r.kind] = r
        lines = [_line(kinds) for kinds in kinds_per_line.values()]
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
    return line


def _ratio(keras_result: Result | None, native_result: Result | None) -> float | None:
    """Keras median over the native reference's median: what Keras's abstraction costs."""
    if keras_result and native_result and keras_result.median_ms and native_result.median_ms:
        return keras_result.median_ms / native_result.median_ms
    return None


def speed_text(ratio: float | None) -> str:
    """'1.00x' for the fastest, '2.31x slower' for the others."""
    if ratio is None:
        return MISSING
    text = f"{ratio:.2f}x"
    return text if text == "1.00x" else f"{text} slower"


# -------------------------------------------------------------------------------------- rendering

def fmt_ms(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def fmt(value: float | None, spec: str) -> str:
    return MISSING if value is None else format(value, spec)


def table(headers: Sequence[str], cells: Sequence[Sequence[str]], style: str = "md") -> str:
    """A markdown table, or ("plain") columns padded with spaces."""
    if style == "md":
        escape = lambda text: str(text).replace("|", "\\|")
        lines = ["| " + " | ".join(map(escape, headers)) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(map(escape, row)) + " |" for row in cells]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *cells, strict=False)]
    pad = lambda row: "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
    return "\n".join([pad(headers), pad(["-" * w for w in widths]), *map(pad, cells)])


HEADERS = ("Backend", "Keras", "Device", "Train ms/step", "Train IQR ms", "Predict ms/batch", "Train samples/s",
           "First step s", "val_accuracy by epoch", "Time to acc. s", "Speed vs fastest", "LSTM kernel", "jit",
           "Harness/plain", "Keras/native train", "Keras/native predict")


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
    return [backend, s.keras, s.device_name, fmt_ms(s.train_median_ms), fmt_ms(s.train_iqr_ms),
            fmt_ms(s.predict_median_ms), fmt(s.train_samples_per_s, ".0f"), fmt(s.first_step_s, ".2f"),
            accuracy, reached, speed_text(s.speed_ratio), s.lstm_kernel or MISSING, s.jit_compile or MISSING,
            fmt(s.harness_vs_plain, ".3f"), fmt(s.keras_vs_native_train, ".2f"),
            fmt(s.keras_vs_native_predict, ".2f")]


def render_markdown(results: Sequence[Result], warnings: Sequence[str] = ()) -> str:
    """The comparison tables, one per group, plus notes on what was left out."""
    out = ["# kerasbench report", ""]
    sweep = [r for r in results if scaling.is_sweep(r)]
    results = [r for r in results if not scaling.is_sweep(r)]  # sweep points get scaling tables instead
    shown = latest(results)
    if not shown and not sweep:
        out += ["No results.", ""]
    for group, lines in summarize(shown):
        out += [f"## {group.label}", "", table(HEADERS, [cells(s) for s in lines]), ""]
        targets = {s.target_accuracy for s in lines if s.target_accuracy is not None}
        notes = ["Medians of the timed rounds; the first (compile) step is timed apart as \"First step\"."]
        if targets:
            notes.append("Time to accuracy: training seconds until val_accuracy reached "
                         + " / ".join(f"{t:g}" for t in sorted(targets)) + ".")
        out += [" ".join(notes), ""]
    out += scaling.render(sweep)
    older = len({r.file for r in results} - {r.file for r in shown})
    if older:
        out += [f"_{older} older result file(s) not shown: each line is the newest run "
                "(`--format csv` lists every run)._", ""]
    if warnings:
        out += ["## Skipped files", ""] + [f"- {w}" for w in warnings] + [""]
    return "\n".join(out)


CSV_FIELDS = ["file", "name", "kind", "backend", "device", "device_name", "profile", "dataset", "batch_size",
              "maxlen", "keras", "backend_version", "finished", "started", "median_ms", "iqr_ms", "q1_ms", "q3_ms",
              "mean_ms", "stddev_ms", "min_ms", "max_ms", "rounds", "first_step_s", "samples_per_s",
              "final_val_accuracy", "target_accuracy", "time_to_accuracy_s", "status", "variant", "jit_compile",
              "lstm_kernel", "harness_vs_plain"]


def flat(r: Result) -> dict:
    """One benchmark as one flat dict of CSV_FIELDS (times in ms, per-epoch history left out)."""
    c, step, acc = r.context, r.step, r.accuracy
    row = {"file": r.file, "name": r.name, "kind": r.kind, "backend": c.backend, "device": c.device,
           "device_name": c.device_name, "profile": c.profile, "dataset": c.dataset["source"],
           "batch_size": c.batch_size, "maxlen": c.maxlen, "keras": c.keras, "backend_version": c.backend_version,
           "finished": r.run.finished, "started": r.run.started, "variant": c.variant, "jit_compile": c.jit_compile,
           "lstm_kernel": c.lstm_kernel, "rounds": r.stats and r.stats.rounds}
    row |= {f"{stat}_ms": r.ms(stat) for stat in ("median", "iqr", "q1", "q3", "mean", "stddev", "min", "max")}
    row |= {"first_step_s": step and step.first_step_s, "samples_per_s": step and step.samples_per_s,
            "harness_vs_plain": step and step.harness_vs_plain}
    row |= {"final_val_accuracy": acc and acc.final_val_accuracy, "target_accuracy": acc and acc.target_accuracy,
            "time_to_accuracy_s": acc and acc.time_to_accuracy_s, "status": acc and acc.status}
    return row


def render_csv(results: Sequence[Result]) -> str:
    """Every run's every benchmark, one line each."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow({k: "" if v is None else v for k, v in flat(r).items()})
    return buffer.getvalue()


def report_document(results: Sequence[Result], warnings: Sequence[str] = ()) -> dict:
    """The JSON report: the comparison tables, every benchmark (flat, plus its history), the warnings."""
    return {
        REPORT_MARKER: 1,
        "groups": [{"key": group._asdict(), "label": group.label, "lines": [asdict(line) for line in lines]}
                   for group, lines in summarize(results)],
        "rows": [{**flat(r), "history": r.accuracy.history if r.accuracy else []} for r in results],
        "warnings": list(warnings),
    }


def render(results: Sequence[Result], fmt_name: str = "md", warnings: Sequence[str] = ()) -> str:
    if fmt_name == "md":
        return render_markdown(results, warnings)
    if fmt_name == "csv":
        return render_csv(results)
    if fmt_name == "json":
        return json.dumps(report_document(results, warnings), indent=2)
    raise ValueError(f"unknown format {fmt_name!r}; choose one of {', '.join(FORMATS)}")


def write_report(results: Sequence[Result], warnings: Sequence[str] = (), fmt_name: str = "md",
                 output: str | os.PathLike | None = None) -> str:
    """Render the report; when ``output`` is given, also write it there atomically. Returns the text."""
    text = render(results, fmt_name, warnings)
    if output is not None:
        if fmt_name == "json":
            write_json_atomic(Path(output), report_document(results, warnings))
        else:
            write_text_atomic(Path(output), text)
    return text
