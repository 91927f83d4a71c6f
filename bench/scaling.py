"""The sweep profile's report: how step latency grows with batch size and sequence length.

Sweep results hold one step benchmark per (batch size, maxlen) point: a batch-size series at one
maxlen and a length series at one batch size (see ``Profile.points``). This module turns them
into scaling tables, growth figures and log-log plots.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SWEEP_PROFILE = "sweep"
SATURATION_GAIN = 0.10  # throughput "stops growing" once the next batch size adds less than this


def is_sweep(row) -> bool:
    return row.profile == SWEEP_PROFILE


def _series(rows: Sequence, kind: str, axis: str) -> dict[str, dict[int, object]]:
    """{backend: {x: row}} for one kind along "batch_size" (at the common maxlen) or "maxlen"."""
    rows = [r for r in rows if is_sweep(r) and r.kind == kind and r.median_ms]
    if not rows:
        return {}
    fixed = "maxlen" if axis == "batch_size" else "batch_size"
    common = Counter(getattr(r, fixed) for r in rows).most_common(1)[0][0]
    series: dict[str, dict[int, object]] = {}
    for row in sorted(rows, key=lambda r: r.started):  # newest run wins a point
        if getattr(row, fixed) == common:
            series.setdefault(row.backend, {})[getattr(row, axis)] = row
    return series


def ms_per_100_steps(points: dict[int, object]) -> float | None:
    """Least-squares slope of median ms against maxlen, per 100 extra timesteps."""
    if len(points) < 2:
        return None
    x = np.array(sorted(points), dtype=float)
    y = np.array([points[n].median_ms for n in sorted(points)])
    return float(np.polyfit(x, y, 1)[0] * 100)


def saturation_batch(points: dict[int, object]) -> str:
    """The batch size past which samples/s grows by less than SATURATION_GAIN."""
    sizes = sorted(points)
    throughput = [b / (points[b].median_ms / 1e3) for b in sizes]
    for b, now, after in zip(sizes, throughput, throughput[1:]):
        if after < now * (1 + SATURATION_GAIN):
            return str(b)
    return f"still growing at {sizes[-1]}" if sizes else "—"


def render(rows: Sequence) -> list[str]:
    """Markdown lines: per kind, a batch-size table, a length table and the growth figures."""
    out: list[str] = []
    for kind in ("train_step", "predict_step"):
        by_batch, by_length = _series(rows, kind, "batch_size"), _series(rows, kind, "maxlen")
        if not by_batch and not by_length:
            continue
        out += [f"## Scaling: {kind.replace('_', ' ')} (sweep profile)", ""]
        for title, series, axis in (("batch size", by_batch, "batch"), ("sequence length", by_length, "maxlen")):
            if not series:
                continue
            xs = sorted({x for points in series.values() for x in points})
            header = "| backend | " + " | ".join(f"{axis} {x}" for x in xs) + " |"
            out += [f"ms per step (samples/s) by {title}:", "", header, "|---|" + "---:|" * len(xs)]
            for backend, points in sorted(series.items()):
                cells = []
                for x in xs:
                    row = points.get(x)
                    cells.append(f"{row.median_ms:.1f} ({row.samples_per_s:.0f})" if row and row.samples_per_s
                                 else f"{row.median_ms:.1f}" if row else "—")
                out.append(f"| {backend} | " + " | ".join(cells) + " |")
            out.append("")
        out += ["| backend | ms per extra 100 timesteps | throughput stops growing at batch |", "|---|---:|---:|"]
        for backend in sorted(set(by_batch) | set(by_length)):
            slope = ms_per_100_steps(by_length.get(backend, {}))
            out.append(f"| {backend} | {'—' if slope is None else f'{slope:.1f}'} | "
                       f"{saturation_batch(by_batch[backend]) if backend in by_batch else '—'} |")
        out += ["", f"_Throughput stops growing: the next batch size adds under {SATURATION_GAIN:.0%} samples/s._",
                ""]
    return out


def plot(rows: Sequence, out_dir: str | os.PathLike) -> list[Path]:
    """Log-log plots of ms/step against batch size and against maxlen, one line per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for axis, label in (("batch_size", "batch size"), ("maxlen", "sequence length (maxlen)")):
        panels = [(kind, _series(rows, kind, axis)) for kind in ("train_step", "predict_step")]
        panels = [(kind, series) for kind, series in panels if series]
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
        for ax, (kind, series) in zip(axes[0], panels):
            for backend, points in sorted(series.items()):
                xs = sorted(points)
                ax.plot(xs, [points[x].median_ms for x in xs], marker="o", label=backend)
            ax.set(xscale="log", yscale="log", xlabel=label, ylabel="median ms per step",
                   title=kind.replace("_", " "))
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        fig.tight_layout()
        path = Path(out_dir) / f"scaling_{axis}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
