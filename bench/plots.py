"""Every PNG kerasbench draws: step latency and val_accuracy per group, and the sweep's scaling plots.

matplotlib is imported inside ``plot`` (the "report" extra): tables need no plotting library.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import scaling
from bench.report import by_group, fmt_ms, latest
from bench.results import GroupKey, Result


def plot(results: Sequence[Result], out_dir: str | os.PathLike) -> list[Path]:
    """Write every plot the results allow into ``out_dir``; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [_save(plt, fig, out / f"scaling_{axis}.png") for axis, fig in _scaling(plt, results)]
    for group, members in by_group(latest([r for r in results if not scaling.is_sweep(r)])).items():
        latency = _latency(plt, group, members)
        if latency is not None:
            written.append(_save(plt, latency, out / f"latency_{group.slug}.png"))
        accuracy = _accuracy(plt, group, members)
        if accuracy is not None:
            written.append(_save(plt, accuracy, out / f"accuracy_{group.slug}.png"))
    return written


def _line_label(result: Result, results: Sequence[Result]) -> str:
    # Name device or Keras only when they tell lines apart.
    label = result.backend
    if len({r.context.device_name for r in results}) > 1:
        label += f"\n{result.context.device_name}"
    if len({r.context.keras for r in results}) > 1:
        label += f"\nkeras {result.context.keras}"
    return label + (" (incomplete)" if not result.run.finished else "")


def _latency(plt: Any, group: GroupKey, members: Sequence[Result]) -> Any:
    panels = [(kind, [r for r in members if r.kind == kind and r.median_ms is not None])
              for kind in ("train_step", "predict_step")]
    panels = [(kind, results) for kind, results in panels if results]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (kind, results) in zip(axes[0], panels, strict=True):
        results = sorted(results, key=lambda r: r.median_ms)
        medians = [r.median_ms for r in results]
        low = [max(0.0, r.median_ms - r.ms("q1")) for r in results]
        high = [max(0.0, r.ms("q3") - r.median_ms) for r in results]
        x = range(len(results))
        ax.bar(x, medians, yerr=[low, high], capsize=6, color="#4C78A8" if kind == "train_step" else "#F58518")
        ax.set_xticks(list(x), [_line_label(r, members) for r in results])
        for xi, m in zip(x, medians, strict=True):
            ax.annotate(fmt_ms(m), (xi, m), textcoords="offset points", xytext=(8, 3), fontsize=9)
        unit = "ms / step" if kind == "train_step" else "ms / batch"
        ax.set_title(f"{kind.replace('_', ' ')} ({unit})")
        ax.set_ylabel(f"median {unit}, whiskers: IQR")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(group.label, fontsize=10)
    return fig


def _accuracy(plt: Any, group: GroupKey, members: Sequence[Result]) -> Any:
    results = [r for r in members if r.accuracy and r.accuracy.history]
    if not results:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    epochs: set[float] = set()
    for r in sorted(results, key=lambda r: r.backend):
        points = [(h["epoch"], h["val_accuracy"]) for h in r.accuracy.history if h.get("val_accuracy") is not None]
        if points:
            epochs.update(e for e, _ in points)
            ax.plot(*zip(*points, strict=True), marker="o", label=_line_label(r, results).replace("\n", ", "))
    for target in {r.accuracy.target_accuracy for r in results}:
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


def _scaling(plt: Any, results: Sequence[Result]) -> list[tuple[str, Any]]:
    """Log-log plots of ms/step against batch size and against maxlen, one line per backend."""
    figures = []
    for axis, label in (("batch_size", "batch size"), ("maxlen", "sequence length (maxlen)")):
        panels = [(kind, scaling.series(results, kind, axis)) for kind in ("train_step", "predict_step")]
        panels = [(kind, series) for kind, series in panels if series]
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
        for ax, (kind, series) in zip(axes[0], panels, strict=True):
            for backend, points in sorted(series.items()):
                xs = sorted(points)
                ax.plot(xs, [points[x].median_ms for x in xs], marker="o", label=backend)
            ax.set(xscale="log", yscale="log", xlabel=label, ylabel="median ms per step",
                   title=kind.replace("_", " "))
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        figures.append((axis, fig))
    return figures


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
