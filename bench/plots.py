"""Every PNG kerasbench draws: step latency and val_accuracy per group, per-epoch curves over seeds, and
the sweep's scaling plots.

matplotlib is imported inside ``plot`` (the "report" extra): tables need no plotting library.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import parity, scaling
from bench.report import data_parallel_rows
from bench.results import GroupKey, Result
from bench.selection import aggregate, by_group, latest
from bench.tables import fmt_ms


def plot(results: Sequence[Result], out_dir: str | os.PathLike) -> list[Path]:
    """Write every plot the results allow into ``out_dir``; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [_save(plt, fig, out / f"scaling_{axis}.png") for axis, fig in _scaling(plt, results)]
    efficiency = _efficiency(plt, results)
    if efficiency is not None:
        written.append(_save(plt, efficiency, out / "data_parallel_efficiency.png"))
    single = [r for r in results if not scaling.is_sweep(r) and not r.distributed]  # layouts: the plot above
    for group, members in by_group(latest(single)).items():
        latency = _latency(plt, group, members)
        if latency is not None:
            written.append(_save(plt, latency, out / f"latency_{group.slug}.png"))
        accuracy = _accuracy(plt, group, members)
        if accuracy is not None:
            written.append(_save(plt, accuracy, out / f"accuracy_{group.slug}.png"))
    for seeded in parity.analyze(results, with_pairs=False):
        if seeded.several_seeds:
            key = seeded.key
            name = f"curves_{key.group.slug}-e{key.epochs}-n{key.train_samples}.png"
            written.append(_save(plt, _curves(plt, seeded), out / name))
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
        bars = _bars(results)  # one bar per line: several processes of a run (--repeat) make one bar
        results = [r for r, _, _, _ in bars]
        medians = [m for _, m, _, _ in bars]
        low = [max(0.0, m - lo) for _, m, lo, _ in bars]
        high = [max(0.0, hi - m) for _, m, _, hi in bars]
        x = range(len(results))
        ax.bar(x, medians, yerr=[low, high], capsize=6, color="#4C78A8" if kind == "train_step" else "#F58518")
        ax.set_xticks(list(x), [_line_label(r, members) for r in results])
        for xi, m in zip(x, medians, strict=True):
            ax.annotate(fmt_ms(m), (xi, m), textcoords="offset points", xytext=(8, 3), fontsize=9)
        unit = "ms / step" if kind == "train_step" else "ms / batch"
        ax.set_title(f"{kind.replace('_', ' ')} ({unit})")
        several = any(len([r for r in members if r.kind == kind and r.line == res.line]) > 1 for res in results)
        ax.set_ylabel(f"median {unit}, whiskers: " + ("95% CI over processes" if several else "IQR"))
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(group.label, fontsize=10)
    return fig


def _bars(results: Sequence[Result]) -> list[tuple[Result, float, float, float]]:
    """(result, median, low, high) per line, fastest first: one process's median and IQR, or several
    processes' median of medians and its 95% interval (``bench.selection.aggregate``)."""
    lines: dict[tuple, list[Result]] = {}
    for r in results:
        lines.setdefault(r.line, []).append(r)
    bars = []
    for members in lines.values():
        summary = aggregate(members)
        if len(members) > 1 and summary.low_ms is not None:
            bars.append((members[-1], summary.median_ms, summary.low_ms, summary.high_ms))
        else:
            r = members[-1]
            bars.append((r, r.median_ms, r.ms("q1"), r.ms("q3")))
    return sorted(bars, key=lambda bar: bar[1])


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


def _curves(plt: Any, group: parity.ParityGroup) -> Any:
    """val_accuracy and val_loss per epoch: every seed (thin), and per backend the mean with a min-max band."""
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    epochs_seen: set[int] = set()
    for i, backend in enumerate(group.backends):
        histories = [run.history for run in backend.ok_runs if run.history]
        if not histories:
            continue
        length = min(len(h) for h in histories)  # a run cut short draws only the epochs all seeds have
        epochs = [histories[0][e]["epoch"] for e in range(length)]
        epochs_seen.update(epochs)
        color = colors[i % len(colors)]
        for ax, metric in zip(axes, ("val_accuracy", "val_loss"), strict=True):
            values = np.array([[h[e][metric] for e in range(length)] for h in histories], dtype=float)
            for row in values:
                ax.plot(epochs, row, color=color, alpha=0.25, linewidth=0.8)
            ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=color, alpha=0.15)
            ax.plot(epochs, values.mean(axis=0), color=color, marker="o",
                    label=f"{backend.label} (mean of {len(histories)} seeds)")
    axes[0].axhline(group.key.target, color="grey", linestyle="--", linewidth=1, label=f"target {group.key.target:g}")
    for ax, metric in zip(axes, ("val_accuracy", "val_loss"), strict=True):
        ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} per epoch (band: min-max over seeds)")
        if 0 < len(epochs_seen) <= 20:
            ax.set_xticks(sorted(epochs_seen))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(group.key.label, fontsize=10)
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


def _efficiency(plt: Any, results: Sequence[Result]) -> Any:
    """Scaling efficiency against N, one line per backend, layout kind and scaling (N = 1 is 1 by definition)."""
    rows = [r for r in data_parallel_rows(results) if r.step.scaling and r.step.scaling.efficiency is not None]
    if not rows:
        return None
    lines: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        kind = "devices" if r.layout.mode == "devices" else "processes"
        label = f"{r.backend} ({r.context.device_name}), {kind}, {r.layout.scaling}"
        label += ", simulated" if r.simulated else ""
        lines.setdefault(label, [(1, 1.0)]).append((r.layout.replicas, r.step.scaling.efficiency))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, points in sorted(lines.items()):
        points = sorted(dict(points).items())
        ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="ideal")
    ax.set_xticks(sorted({n for points in lines.values() for n, _ in points}))
    ax.set(xlabel="replicas N", ylabel="efficiency: samples/s at N / (N x at 1)", ylim=(0, None))
    simulated = any(r.simulated for r in rows)
    ax.set_title("Data-parallel scaling efficiency" + ("\n(simulated devices on one CPU)" if simulated else ""),
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def history(series: Any, path: str | os.PathLike, title: str = "") -> Path:
    """Medians over time (``bench.history`` series), one line per benchmark; steps marked and labelled.

    ``series`` maps (benchmark name, group) to points in time order.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    for (name, group), points in series.items():
        when = [p.when for p in points]
        line = ax.plot(when, [p.median_ms for p in points], marker="o", markersize=4,
                       label=f"{name} ({group.profile}, b{group.batch_size}, len{group.maxlen})")[0]
        for p in points:
            if p.step:
                confirmed = p.step.startswith("step")  # an unconfirmed one gets a dashed orange ring
                ax.scatter([p.when], [p.median_ms], s=120, facecolors="none", linewidths=1.5, zorder=3,
                           edgecolors="red" if confirmed else "orange", linestyles="solid" if confirmed else "dashed")
                ax.annotate(f"{p.step.split(' (')[0]}\n{p.commit[:8]}", (p.when, p.median_ms),
                            textcoords="offset points", xytext=(6, 6), fontsize=8, color=line.get_color())
            if p.note.startswith("machine changed"):
                ax.axvline(p.when, color="grey", linestyle=":", linewidth=1)
    ax.set_yscale("log")
    ax.set_ylabel("median ms (several processes: median of their medians)")
    ax.set_title(title or "kerasbench history: red circles mark step changes, dotted lines a change of machine",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.autofmt_xdate()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _save(plt, fig, path)
