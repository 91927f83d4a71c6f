"""Every PNG kerasbench draws, from the report model (``bench.report.build``): step latency and
val_accuracy per group, per-epoch curves over seeds, the sweep's scaling plots, data-parallel efficiency.

Each backend keeps one colour and one place in every plot (``backend_colour``, ``backend_order``),
so that a backend reads the same across panels and files. matplotlib is imported inside ``plot``
(the "report" extra): tables need no plotting library.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import parity, scaling
from bench.report.model import Group, Line, Report, build
from bench.results import Result
from bench.tables import fmt_ms

# Tableau 10, which matplotlib users know: the known backends first, in bench.backends.BACKENDS order.
BACKEND_COLOURS = {"tensorflow": "#F58518", "jax": "#4C78A8", "torch": "#E45756"}
OTHER_COLOURS = ("#54A24B", "#B279A2", "#9D755D", "#72B7B2", "#EECA3B", "#FF9DA6", "#BAB0AC")


def backend_order(backend: str) -> tuple[int, str]:
    """Sort key: the known backends in a fixed order, then any other by name."""
    known = list(BACKEND_COLOURS)
    return (known.index(backend) if backend in known else len(known), backend)


def backend_colour(backend: str) -> str:
    """The backend's colour in every plot; another backend gets one from its name (crc32: the same every run)."""
    return BACKEND_COLOURS.get(backend) or OTHER_COLOURS[zlib.crc32(backend.encode()) % len(OTHER_COLOURS)]


def plot(report: Report | Sequence[Result], out_dir: str | os.PathLike) -> list[Path]:
    """Write every plot the report allows into ``out_dir``; returns the paths written.

    ``report``: the report model, or results to build it from.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not isinstance(report, Report):
        report = build(report)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [_save(plt, fig, out / f"scaling_{axis}.png") for axis, fig in _scaling(plt, report.sweep)]
    efficiency = _efficiency(plt, report)
    if efficiency is not None:
        written.append(_save(plt, efficiency, out / "data_parallel_efficiency.png"))
    for group in report.groups:
        for name, draw in (("breakdown", _breakdown), ("roofline", _roofline), ("latency", _latency),
                           ("accuracy", _accuracy)):
            figure = draw(plt, group)  # None where the group has nothing to draw
            if figure is not None:
                written.append(_save(plt, figure, out / f"{name}_{group.key.slug}.png"))
    for seeded in report.several_seeds:
        key = seeded.key
        name = f"curves_{key.group.slug}-e{key.epochs}-n{key.train_samples}.png"
        written.append(_save(plt, _curves(plt, seeded), out / name))
    return written


def _line_order(line: Line) -> tuple:
    """Sort key of a table line in every plot: its backend's place, then the default variant first."""
    return backend_order(line.backend), line.variant != "default", line.key


def _line_label(line: Line, group: Group) -> str:
    label = "\n".join([line.backend, *group.distinguishing(line)])
    if line.variant != "default":
        label += f"\n[{line.variant}]"
    return label + (" (incomplete)" if line.incomplete else "")


def _latency(plt: Any, group: Group) -> Any:
    """Train and predict medians per line, in backend order; whiskers: the 95% interval over processes
    (--repeat), else the interquartile range of one process's rounds."""
    ordered = sorted(group.lines, key=_line_order)
    panels = [(kind, [line for line in ordered if getattr(line, f"{name}_median_ms") is not None])
              for kind, name in (("train_step", "train"), ("predict_step", "predict"))]
    panels = [(kind, lines) for kind, lines in panels if lines]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (kind, lines) in zip(axes[0], panels, strict=True):
        name = kind.removesuffix("_step")
        medians = [getattr(line, f"{name}_median_ms") for line in lines]
        spreads = [getattr(line, f"{name}_ci_ms") or group.quartiles_ms(line, kind) for line in lines]
        low = [max(0.0, m - lo) if lo is not None else 0.0 for m, (lo, _) in zip(medians, spreads, strict=True)]
        high = [max(0.0, hi - m) if hi is not None else 0.0 for m, (_, hi) in zip(medians, spreads, strict=True)]
        x = range(len(lines))
        ax.bar(x, medians, yerr=[low, high], capsize=6, color=[backend_colour(line.backend) for line in lines])
        ax.set_xticks(list(x), [_line_label(line, group) for line in lines])
        for xi, m in zip(x, medians, strict=True):
            ax.annotate(fmt_ms(m), (xi, m), textcoords="offset points", xytext=(8, 3), fontsize=9)
        unit = "ms / step" if kind == "train_step" else "ms / batch"
        ax.set_title(f"{kind.replace('_', ' ')} ({unit})")
        several = any(getattr(line, f"{name}_ci_ms") for line in lines)
        ax.set_ylabel(f"median {unit}, whiskers: " + ("95% CI over processes" if several else "IQR"))
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(group.key.label, fontsize=10)
    return fig


PHASE_COLOURS = {"forward": "#4C78A8", "backward": "#F58518", "optimizer": "#54A24B", "overhead": "#BAB0AC"}


def _breakdown(plt: Any, group: Group) -> Any:
    """Stacked bars of each train step's phases (Keras and native per backend), and of its op families where
    profiled; None without --explain records."""
    bars = [(f"{_line_label(s, group)}\n{step}", p) for s in sorted(group.lines, key=_line_order)
            for step, p in (("Keras", s.train_phases), ("native", s.native_train_phases)) if p]
    if not bars:
        return None
    profiled = [(label, p["families"]) for label, p in bars if p["families"]]
    fig, axes = plt.subplots(1, 2 if profiled else 1, figsize=(11 if profiled else 6, 4.5), squeeze=False)
    ax = axes[0][0]
    for i, (_, p) in enumerate(bars):
        bottom = 0.0
        for phase, colour in PHASE_COLOURS.items():
            value = max(p[phase], 0.0)  # a negative overhead (the step did less than the lean variant) shows as 0
            ax.bar(i, value, bottom=bottom, color=colour, label=phase if i == 0 else None)
            bottom += value
        ax.scatter([i], [p["median"]], color="black", marker="_", s=300, zorder=3,
                   label="benchmark median" if i == 0 else None)
    ax.set_xticks(range(len(bars)), [label for label, _ in bars], fontsize=7)
    ax.set_ylabel("ms per train step")
    ax.set_title(f"Phases: {group.key.label}", fontsize=9)
    ax.legend(fontsize=7)
    if profiled:
        ax = axes[0][1]
        families = sorted({k for _, f in profiled for k in f})
        colours = dict(zip(families, (*OTHER_COLOURS, *BACKEND_COLOURS.values()), strict=False))
        for i, (_, f) in enumerate(profiled):
            bottom = 0.0
            for family in families:
                ax.bar(i, f.get(family, 0.0), bottom=bottom, color=colours.get(family, "#999999"),
                       label=family if i == 0 else None)
                bottom += f.get(family, 0.0)
        ax.set_xticks(range(len(profiled)), [label for label, _ in profiled], fontsize=7)
        ax.set_ylabel("ms per train step (profiler)")
        ax.set_title("Operation families (wall time under the profiler)", fontsize=9)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def _roofline(plt: Any, group: Group) -> Any:
    """Arithmetic intensity against achieved GFLOP/s, one point per backend and step, under each backend's roof
    (its measured large-GEMM rate, and its triad bandwidth times intensity); None without roofline records."""
    import numpy as np

    lines = sorted((s for s in group.lines if s.roof), key=_line_order)
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    lowest = min(v for s in lines for v in (s.train_intensity, s.predict_intensity) if v)
    x = np.logspace(np.log10(lowest / 10), np.log10(max(lowest * 1000, 1e3)), 200)
    for s in lines:
        colour, roof = backend_colour(s.backend), s.roof
        peak, bandwidth = roof["gemm_flops_per_s"] / 1e9, roof["triad_bytes_per_s"] / 1e9
        ax.plot(x, np.minimum(peak, bandwidth * x), color=colour, linestyle="--", linewidth=1,
                label=f"{s.backend} roof: {peak:.0f} GFLOP/s GEMM, {bandwidth:.1f} GB/s triad")
        for kind, marker in (("train", "o"), ("predict", "s")):
            intensity, gflops = getattr(s, f"{kind}_intensity"), getattr(s, f"{kind}_gflops")
            if intensity and gflops:
                ax.scatter([intensity], [gflops], color=colour, marker=marker, zorder=3,
                           label=f"{_line_label(s, group)} {kind} ({getattr(s, f'{kind}_share'):.2f} of the "
                                 f"{getattr(s, f'{kind}_binding')} bound)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (analytic FLOPs per byte that must move)")
    ax.set_ylabel("achieved GFLOP/s (median step)")
    ax.set_title(f"Roofline: {group.key.label}", fontsize=9)
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig


def _accuracy(plt: Any, group: Group) -> Any:
    histories = sorted(group.histories(), key=lambda item: _line_order(item[0]))
    if not histories:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    epochs: set[float] = set()
    labelled: set[tuple] = set()
    for line, history in histories:
        points = [(h["epoch"], h["val_accuracy"]) for h in history if h.get("val_accuracy") is not None]
        if points:
            epochs.update(e for e, _ in points)
            label = _line_label(line, group).replace("\n", ", ")
            ax.plot(*zip(*points, strict=True), marker="o", color=backend_colour(line.backend),
                    label=None if line.key in labelled else label)  # several seeds: one legend entry
            labelled.add(line.key)
    for target in sorted({line.target_accuracy for line, _ in histories if line.target_accuracy is not None}):
        ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("val_accuracy")
    if 0 < len(epochs) <= 20:  # whole epochs only; matplotlib would tick 0.96, 0.98, ... for one epoch
        ax.set_xticks(sorted(epochs))
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    ax.set_title(f"val_accuracy per epoch\n{group.key.label}", fontsize=10)
    return fig


def _curves(plt: Any, group: parity.ParityGroup) -> Any:
    """val_accuracy and val_loss per epoch: every seed (thin), and per backend the mean with a min-max band."""
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    epochs_seen: set[int] = set()
    for backend in sorted(group.backends, key=lambda b: (backend_order(b.line[0]), b.line)):
        histories = [run.history for run in backend.ok_runs if run.history]
        if not histories:
            continue
        length = min(len(h) for h in histories)  # a run cut short draws only the epochs all seeds have
        epochs = [histories[0][e]["epoch"] for e in range(length)]
        epochs_seen.update(epochs)
        color = backend_colour(backend.line[0])
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


def _scaling(plt: Any, sweep: Sequence[Result]) -> list[tuple[str, Any]]:
    """Log-log plots of ms/step against batch size and against maxlen, one line per backend."""
    figures = []
    for axis, label in (("batch_size", "batch size"), ("maxlen", "sequence length (maxlen)")):
        panels = [(kind, scaling.series(sweep, kind, axis)) for kind in ("train_step", "predict_step")]
        panels = [(kind, series) for kind, series in panels if series]
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
        for ax, (kind, series) in zip(axes[0], panels, strict=True):
            for backend in sorted(series, key=backend_order):
                points = series[backend]
                xs = sorted(points)
                ax.plot(xs, [points[x].median_ms for x in xs], marker="o", label=backend,
                        color=backend_colour(backend))
            ax.set(xscale="log", yscale="log", xlabel=label, ylabel="median ms per step",
                   title=kind.replace("_", " "))
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        figures.append((axis, fig))
    return figures


def _efficiency(plt: Any, report: Report) -> Any:
    """Scaling efficiency against N, one line per backend, layout kind and scaling (N = 1 is 1 by definition)."""
    rows = [p for p in report.parallel_steps if p.efficiency is not None]
    if not rows:
        return None
    lines: dict[tuple, list[tuple[int, float]]] = {}
    for p in rows:
        kind = "devices" if p.mode == "devices" else "processes"
        label = f"{p.backend} ({p.device_name}), {kind}, {p.scaling}" + (", simulated" if p.simulated else "")
        lines.setdefault((backend_order(p.backend), label, p.backend, kind, p.scaling), [(1, 1.0)]).append(
            (p.replicas, p.efficiency))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (_, label, backend, kind, weak_or_strong), points in sorted(lines.items()):
        points = sorted(dict(points).items())
        # Colour: the backend, as in every plot; dashes: N processes; squares: strong scaling.
        ax.plot(*zip(*points, strict=True), label=label, color=backend_colour(backend),
                linestyle="-" if kind == "devices" else "--", marker="s" if weak_or_strong == "strong" else "o")
    ax.axhline(1.0, color="grey", linestyle=":", linewidth=1, label="ideal")
    ax.set_xticks(sorted({n for points in lines.values() for n, _ in points}))
    ax.set(xlabel="replicas N", ylabel="efficiency: samples/s at N / (N x at 1)", ylim=(0, None))
    simulated = any(p.simulated for p in rows)
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


def matrix(rows: Sequence[Any], cells: Sequence[str], kind: str, path: str | os.PathLike,
           title: str = "") -> Path | None:
    """One benchmark over a version matrix (``bench.matrix.Row``s): the median per cell, one line per backend,
    with its 95% interval over processes; None when no row has a value for ``kind`` ("train" or "predict")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in rows if getattr(r, f"{kind}_ms") is not None]
    if not measured:
        return None
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(cells) + 2), 4.5))
    for backend in sorted({r.backend for r in measured}, key=backend_order):
        mine = {r.cell: r for r in measured if r.backend == backend}
        xs = [i for i, cell in enumerate(cells) if cell in mine]
        medians = [getattr(mine[cells[i]], f"{kind}_ms") for i in xs]
        intervals = [getattr(mine[cells[i]], f"{kind}_ci_ms") for i in xs]
        low = [m - (ci[0] if ci else m) for m, ci in zip(medians, intervals, strict=True)]
        high = [(ci[1] if ci else m) - m for m, ci in zip(medians, intervals, strict=True)]
        ax.errorbar(xs, medians, yerr=[low, high], marker="o", capsize=3, color=backend_colour(backend),
                    label=backend)
        for x, m in zip(xs, medians, strict=True):
            ax.annotate(fmt_ms(m), (x, m), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xticks(range(len(cells)))
    ax.set_xticklabels([cell.replace(" ", "\n") for cell in cells], fontsize=8)
    ax.set_ylabel(f"{kind} step, median ms (median of process medians, 95% CI)")
    ax.set_title(title or f"kerasbench matrix: {kind} step per cell and backend", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _save(plt, fig, path)
