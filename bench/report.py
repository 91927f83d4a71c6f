"""Tables (markdown, CSV, JSON) and plots from result files.

Result files are read leniently: a file that cannot be used (unreadable, truncated, foreign JSON,
another schema version) is skipped with a warning naming it, and the rest are reported.

Runs are compared only with like: the comparison key is (profile, dataset source, batch size,
maxlen, device kind), and each key gets its own table. Within a table there is one line per
(backend, device name, Keras version, variant); when several files hold that line, the newest run (by its
start time) is shown and older ones are left out of the tables and plots (CSV and JSON keep every
run). A run that did not finish is marked "(incomplete)".
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from bench import scaling
from bench.results import SCHEMA_VERSION, write_atomic, write_text_atomic

FORMATS = ("md", "csv", "json")
KINDS = ("train_step", "predict_step", "accuracy")
MISSING = "—"
_REPORT_MARKER = "kerasbench_report"  # our own JSON report: skipped silently when found among results


class GroupKey(NamedTuple):
    """What makes two runs comparable."""

    profile: str
    dataset: str
    batch_size: int | None
    maxlen: int | None
    device: str

    @property
    def label(self) -> str:
        return (f"{self.profile} profile · {self.dataset} data · batch {self.batch_size} · "
                f"maxlen {self.maxlen} · {self.device}")

    @property
    def slug(self) -> str:
        return f"{self.profile}-{self.dataset}-bs{self.batch_size}-len{self.maxlen}-{self.device}"


@dataclass
class Row:
    """One benchmark of one run. Times from the JSON are seconds; ``*_ms`` fields are milliseconds."""

    file: str
    name: str
    kind: str
    backend: str
    device: str
    device_name: str
    profile: str
    dataset: str
    batch_size: int | None
    maxlen: int | None
    keras: str
    backend_version: str
    finished: bool
    started: str
    median_ms: float | None
    iqr_ms: float | None
    q1_ms: float | None
    q3_ms: float | None
    mean_ms: float | None
    stddev_ms: float | None
    min_ms: float | None
    max_ms: float | None
    rounds: int | None
    first_step_s: float | None = None
    samples_per_s: float | None = None
    final_val_accuracy: float | None = None
    target_accuracy: float | None = None
    time_to_accuracy_s: float | None = None
    status: str | None = None
    variant: str = "default"  # bench/variants.py: jit, no-jit, bf16, ...
    jit_compile: str | None = None  # what jit_compile="auto" resolved to
    lstm_kernel: str | None = None  # which LSTM implementation Keras picked
    harness_vs_plain: float | None = None  # harness median / plain-loop median of the same step
    history: list[dict] = field(default_factory=list)

    @property
    def group(self) -> GroupKey:
        return GroupKey(self.profile, self.dataset, self.batch_size, self.maxlen, self.device)

    @property
    def line(self) -> tuple[str, str, str, str]:
        """Which line of a comparison table this row belongs to."""
        return self.backend, self.device_name, self.keras, self.variant


@dataclass
class Run:
    """One readable result file and its rows."""

    path: Path
    rows: list[Row]


# ---------------------------------------------------------------------------------------- loading

def load_results(paths: Iterable[str | os.PathLike]) -> tuple[list[Run], list[str]]:
    """Read result files and folders (``*.json`` directly inside); return runs and warnings.

    Never raises for a bad file: it is skipped and a warning names it.
    """
    runs: list[Run] = []
    warnings: list[str] = []
    seen: set[Path] = set()
    for path in _expand(paths, warnings):
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            warnings.append(f"{path}: skipped, unreadable ({getattr(exc, 'strerror', None) or exc})")
            continue
        except json.JSONDecodeError as exc:
            warnings.append(f"{path}: skipped, not valid JSON (truncated?): {exc.msg} at line {exc.lineno}")
            continue
        if isinstance(document, dict) and _REPORT_MARKER in document:
            continue
        problem = _check(document)
        if problem:
            warnings.append(f"{path}: skipped, {problem}")
            continue
        try:
            rows = [_row(path, document, bench) for bench in document["benchmarks"]]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            warnings.append(f"{path}: skipped, malformed benchmark entry ({type(exc).__name__}: {exc})")
            continue
        runs.append(Run(path, rows))
    return runs, warnings


def rows_of(runs: Iterable[Run]) -> list[Row]:
    return [row for run in runs for row in run.rows]


def _expand(paths: Iterable[str | os.PathLike], warnings: list[str]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            # Not recursive: results/baseline/ must not mix into a report of results/.
            inside = sorted(p for p in path.glob("*.json") if p.is_file() and not p.name.startswith("."))
            if not inside:
                warnings.append(f"{path}: no result files (*.json) in this folder")
            found.extend(inside)
        elif path.exists():
            found.append(path)
        else:
            warnings.append(f"{path}: skipped, no such file or folder")
    return found


def _check(document: Any) -> str | None:
    """Why a parsed document is not a usable result file, or None."""
    if not isinstance(document, dict) or not isinstance(document.get("benchmarks"), list):
        return "not a pytest-benchmark result (no 'benchmarks' list)"
    block = document.get("kerasbench")
    if not isinstance(block, dict):
        return "not a kerasbench result (no 'kerasbench' block)"
    version = block.get("schema_version")
    if version != SCHEMA_VERSION:
        return f"schema_version {version!r}, this kerasbench reads {SCHEMA_VERSION}"
    return None


def _row(path: Path, document: dict, bench: dict) -> Row:
    block = document["kerasbench"]
    settings = block.get("settings") or {}
    info = bench.get("extra_info") or {}  # empty when a benchmark failed before it was recorded
    stats = bench["stats"]
    backend = str(info.get("backend") or block.get("backend") or "?")
    machine = (document.get("machine_info") or {}).get("kerasbench") or {}
    name = str(bench["name"])
    ms = lambda key: _scaled(stats.get(key), 1e3)  # seconds in the JSON, ms in rows
    return Row(
        file=str(path),
        name=name,
        kind=name.split("[", 1)[0].removeprefix("test_"),
        backend=backend,
        device=str(info.get("device") or block.get("device") or "?"),
        device_name=str(info.get("device_name") or block.get("device_name") or "?"),
        profile=str(info.get("profile") or settings.get("profile") or "?"),
        dataset=str((info.get("dataset") or {}).get("source") or settings.get("dataset_requested") or "?"),
        batch_size=_int(info.get("batch_size", settings.get("batch_size"))),
        maxlen=_int(info.get("maxlen", settings.get("maxlen"))),
        keras=str(info.get("keras") or machine.get("keras") or "?"),
        backend_version=str(info.get(backend) or machine.get(backend) or "?"),
        finished=block.get("finished") is True,
        started=str(block.get("started") or document.get("datetime") or ""),
        median_ms=ms("median"), iqr_ms=ms("iqr"), q1_ms=ms("q1"), q3_ms=ms("q3"),
        mean_ms=ms("mean"), stddev_ms=ms("stddev"), min_ms=ms("min"), max_ms=ms("max"),
        rounds=_int(stats.get("rounds")),
        first_step_s=_num(info.get("first_step_s")),
        samples_per_s=_num(info.get("samples_per_s")),
        final_val_accuracy=_num(info.get("final_val_accuracy")),
        target_accuracy=_num(info.get("target_accuracy")),
        time_to_accuracy_s=_num(info.get("time_to_accuracy_s")),
        status=None if info.get("status") is None else str(info["status"]),
        variant=str(info.get("variant") or settings.get("variant") or "default"),
        jit_compile=None if info.get("jit_compile") is None else str(info["jit_compile"]),
        lstm_kernel=None if info.get("lstm_kernel") is None else str(info["lstm_kernel"]),
        harness_vs_plain=_num(info.get("harness_vs_plain")),
        history=[h for h in info.get("history") or [] if isinstance(h, dict)],
    )


def _num(value: Any) -> float | None:
    """A finite float, or None (missing, null, NaN, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _scaled(value: Any, factor: float) -> float | None:
    number = _num(value)
    return None if number is None else number * factor


def _int(value: Any) -> int | None:
    number = _num(value)
    return None if number is None else int(number)


# -------------------------------------------------------------------------------- selecting rows

def started_order(row: Row) -> tuple[float, str]:
    """Sort key: run start time, then file name (files are named by start time too)."""
    try:
        stamp = datetime.fromisoformat(row.started).timestamp()
    except (ValueError, TypeError, OverflowError, OSError):
        stamp = float("-inf")
    return stamp, row.file


def latest(rows: Iterable[Row], key: Callable[[Row], Any] | None = None) -> list[Row]:
    """Keep, per ``key`` (default: group + table line), only the rows of the newest file."""
    key = key or (lambda r: (r.group, r.line))
    newest: dict[Any, Row] = {}
    rows = list(rows)
    for row in rows:
        k = key(row)
        if k not in newest or started_order(row) > started_order(newest[k]):
            newest[k] = row
    return [r for r in rows if newest[key(r)].file == r.file]


def by_group(rows: Iterable[Row]) -> dict[GroupKey, list[Row]]:
    groups: dict[GroupKey, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)
    return dict(sorted(groups.items(), key=lambda item: tuple(str(v) for v in item[0])))


# ------------------------------------------------------------------------------------ summarizing

def summarize(rows: Iterable[Row]) -> list[tuple[GroupKey, list[dict]]]:
    """Per group, one dict per table line (newest run only), fastest train step first."""
    result = []
    for group, members in by_group(latest(rows)).items():
        lines: dict[tuple, dict[str, Row]] = {}
        for row in members:
            lines.setdefault(row.line, {})[row.kind] = row
        summaries = [_summary(line, kinds) for line, kinds in lines.items()]
        medians = [s["train_median_ms"] for s in summaries if s["train_median_ms"]]
        fastest = min(medians) if medians else None
        for s in summaries:
            s["speed_ratio"] = s["train_median_ms"] / fastest if fastest and s["train_median_ms"] else None
        summaries.sort(key=lambda s: (s["speed_ratio"] is None, s["speed_ratio"] or 0, s["backend"]))
        result.append((group, summaries))
    return result


def _summary(line: tuple[str, str, str, str], kinds: dict[str, Row]) -> dict:
    train, predict, acc = kinds.get("train_step"), kinds.get("predict_step"), kinds.get("accuracy")
    native_train, native_predict = kinds.get("native_train_step"), kinds.get("native_predict_step")
    any_row = train or predict or acc or next(iter(kinds.values()))  # Keras's own rows describe the line
    return {
        "backend": line[0], "device_name": line[1], "keras": line[2], "variant": line[3],
        "backend_version": any_row.backend_version,
        "incomplete": not all(r.finished for r in kinds.values()),
        "files": sorted({r.file for r in kinds.values()}),
        "train_median_ms": train and train.median_ms, "train_iqr_ms": train and train.iqr_ms,
        "predict_median_ms": predict and predict.median_ms, "predict_iqr_ms": predict and predict.iqr_ms,
        "train_samples_per_s": train and train.samples_per_s, "first_step_s": train and train.first_step_s,
        "final_val_accuracy": acc and acc.final_val_accuracy, "target_accuracy": acc and acc.target_accuracy,
        "time_to_accuracy_s": acc and acc.time_to_accuracy_s, "accuracy_status": acc and acc.status,
        "has_accuracy": acc is not None,
        "val_accuracy_per_epoch": [h.get("val_accuracy") for h in acc.history] if acc else [],
        "lstm_kernel": any_row.lstm_kernel, "jit_compile": any_row.jit_compile,
        "harness_vs_plain": train and train.harness_vs_plain,
        "keras_vs_native_train": _ratio(train, native_train),
        "keras_vs_native_predict": _ratio(predict, native_predict),
    }


def _ratio(keras_row: Row | None, native_row: Row | None) -> float | None:
    """Keras median over the native reference's median: what Keras's abstraction costs."""
    if keras_row and native_row and keras_row.median_ms and native_row.median_ms:
        return keras_row.median_ms / native_row.median_ms
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


def _cells(s: dict) -> list[str]:
    backend = f"{s['backend']} {s['backend_version']}"
    if s["variant"] != "default":
        backend += f" [{s['variant']}]"
    if s["incomplete"]:
        backend += " (incomplete)"
    if s["accuracy_status"] and s["accuracy_status"] != "ok":
        accuracy = "failed"
    else:
        per_epoch = [fmt(v, ".3f") for v in s["val_accuracy_per_epoch"]]
        accuracy = " → ".join(per_epoch) if per_epoch else fmt(s["final_val_accuracy"], ".3f")
    reached = fmt(s["time_to_accuracy_s"], ".1f")
    if s["has_accuracy"] and s["time_to_accuracy_s"] is None and accuracy != "failed":
        reached = "not reached"
    return [backend, s["keras"], s["device_name"], fmt_ms(s["train_median_ms"]), fmt_ms(s["train_iqr_ms"]),
            fmt_ms(s["predict_median_ms"]), fmt(s["train_samples_per_s"], ".0f"), fmt(s["first_step_s"], ".2f"),
            accuracy, reached, speed_text(s["speed_ratio"]), s["lstm_kernel"] or MISSING, s["jit_compile"] or MISSING,
            fmt(s["harness_vs_plain"], ".3f"), fmt(s["keras_vs_native_train"], ".2f"),
            fmt(s["keras_vs_native_predict"], ".2f")]


def render_markdown(rows: Sequence[Row], warnings: Sequence[str] = ()) -> str:
    """The comparison tables, one per group, plus notes on what was left out."""
    out = ["# kerasbench report", ""]
    sweep_rows = [r for r in rows if scaling.is_sweep(r)]
    rows = [r for r in rows if not scaling.is_sweep(r)]  # sweep points get scaling tables instead
    shown = latest(rows)
    if not shown and not sweep_rows:
        out += ["No results.", ""]
    for group, summaries in summarize(shown):
        out += [f"## {group.label}", "", table(HEADERS, [_cells(s) for s in summaries]), ""]
        targets = {s["target_accuracy"] for s in summaries if s["target_accuracy"] is not None}
        notes = ["Medians of the timed rounds; the first (compile) step is timed apart as \"First step\"."]
        if targets:
            notes.append("Time to accuracy: training seconds until val_accuracy reached "
                         + " / ".join(f"{t:g}" for t in sorted(targets)) + ".")
        out += [" ".join(notes), ""]
    out += scaling.render(sweep_rows)
    older = len({r.file for r in rows} - {r.file for r in shown})
    if older:
        out += [f"_{older} older result file(s) not shown: each line is the newest run "
                "(`--format csv` lists every run)._", ""]
    if warnings:
        out += ["## Skipped files", ""] + [f"- {w}" for w in warnings] + [""]
    return "\n".join(out)


CSV_FIELDS = [f.name for f in fields(Row) if f.name != "history"]


def render_csv(rows: Sequence[Row]) -> str:
    """Every run's every benchmark, one line each (history left out)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in asdict(row).items()})
    return buffer.getvalue()


def report_document(rows: Sequence[Row], warnings: Sequence[str] = ()) -> dict:
    """The JSON report: the comparison tables, every row, and the warnings."""
    return {
        _REPORT_MARKER: 1,
        "groups": [{"key": group._asdict(), "label": group.label, "lines": lines} for group, lines in summarize(rows)],
        "rows": [asdict(row) for row in rows],
        "warnings": list(warnings),
    }


def render(rows: Sequence[Row], fmt_name: str = "md", warnings: Sequence[str] = ()) -> str:
    if fmt_name == "md":
        return render_markdown(rows, warnings)
    if fmt_name == "csv":
        return render_csv(rows)
    if fmt_name == "json":
        return json.dumps(report_document(rows, warnings), indent=2)
    raise ValueError(f"unknown format {fmt_name!r}; choose one of {', '.join(FORMATS)}")


def write_report(rows: Sequence[Row], warnings: Sequence[str] = (), fmt_name: str = "md",
                 output: str | os.PathLike | None = None) -> str:
    """Render the report; when ``output`` is given, also write it there atomically. Returns the text."""
    text = render(rows, fmt_name, warnings)
    if output is not None:
        if fmt_name == "json":
            write_atomic(Path(output), report_document(rows, warnings))
        else:
            write_text_atomic(Path(output), text)
    return text


# ----------------------------------------------------------------------------------------- plots

def plot(rows: Sequence[Row], out_dir: str | os.PathLike) -> list[Path]:
    """PNG plots per group: step latency (median, IQR whiskers) and val_accuracy per epoch."""
    import matplotlib  # lazy: only plotting needs it (the "report" extra)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = scaling.plot(rows, out)
    for group, members in by_group(latest([r for r in rows if not scaling.is_sweep(r)])).items():
        latency = _plot_latency(plt, group, members)
        if latency is not None:
            written.append(_save(plt, latency, out / f"latency_{group.slug}.png"))
        accuracy = _plot_accuracy(plt, group, members)
        if accuracy is not None:
            written.append(_save(plt, accuracy, out / f"accuracy_{group.slug}.png"))
    return written


def _line_label(row: Row, rows: Sequence[Row]) -> str:
    # Name device or Keras only when they tell lines apart.
    label = row.backend
    if len({r.device_name for r in rows}) > 1:
        label += f"\n{row.device_name}"
    if len({r.keras for r in rows}) > 1:
        label += f"\nkeras {row.keras}"
    return label + (" (incomplete)" if not row.finished else "")


def _plot_latency(plt, group: GroupKey, members: Sequence[Row]):
    panels = [(kind, [r for r in members if r.kind == kind and r.median_ms is not None])
              for kind in ("train_step", "predict_step")]
    panels = [(kind, rows) for kind, rows in panels if rows]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (kind, rows) in zip(axes[0], panels, strict=True):
        rows = sorted(rows, key=lambda r: r.median_ms)
        medians = [r.median_ms for r in rows]
        low = [max(0.0, r.median_ms - (r.q1_ms if r.q1_ms is not None else r.median_ms)) for r in rows]
        high = [max(0.0, (r.q3_ms if r.q3_ms is not None else r.median_ms) - r.median_ms) for r in rows]
        x = range(len(rows))
        ax.bar(x, medians, yerr=[low, high], capsize=6, color="#4C78A8" if kind == "train_step" else "#F58518")
        ax.set_xticks(list(x), [_line_label(r, members) for r in rows])
        for xi, m in zip(x, medians, strict=True):
            ax.annotate(fmt_ms(m), (xi, m), textcoords="offset points", xytext=(8, 3), fontsize=9)
        unit = "ms / step" if kind == "train_step" else "ms / batch"
        ax.set_title(f"{kind.replace('_', ' ')} ({unit})")
        ax.set_ylabel(f"median {unit}, whiskers: IQR")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(group.label, fontsize=10)
    return fig


def _plot_accuracy(plt, group: GroupKey, members: Sequence[Row]):
    rows = [r for r in members if r.kind == "accuracy" and r.history]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    epochs: set[float] = set()
    for row in sorted(rows, key=lambda r: r.backend):
        points = [(h.get("epoch"), _num(h.get("val_accuracy"))) for h in row.history]
        points = [(e, v) for e, v in points if isinstance(e, int | float) and v is not None]
        if points:
            epochs.update(e for e, _ in points)
            ax.plot(*zip(*points, strict=True), marker="o", label=_line_label(row, rows).replace("\n", ", "))
    targets = {r.target_accuracy for r in rows if r.target_accuracy is not None}
    for target in targets:
        ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("val_accuracy")
    if 0 < len(epochs) <= 20:  # whole epochs only; matplotlib would tick 0.96, 0.98, ... for one epoch
        ax.set_xticks(sorted(epochs))
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    ax.set_title(f"val_accuracy per epoch\n{group.label}", fontsize=10)
    return fig


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
