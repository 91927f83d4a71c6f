"""The sweep profile's report: how step latency grows with batch size and sequence length.

Sweep results hold one step benchmark per (batch size, maxlen) point: a batch-size series at one
maxlen and a length series at one batch size (see ``Profile.points``). This module turns them
into scaling tables and growth figures; ``bench.plots`` draws them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from bench import profiles
from bench.results import Result
from bench.tables import MISSING

SATURATION_GAIN = 0.10  # throughput "stops growing" once the next batch size adds less than this


def is_sweep(result: Result) -> bool:
    """Whether ``result`` is a sweep point (its profile decides: ``Profile.sweep``)."""
    return profiles.is_sweep(result.context.profile)


def series(results: Sequence[Result], kind: str, axis: str) -> dict[str, dict[int, Result]]:
    """{backend: {x: result}} for one kind along "batch_size" (at the common maxlen) or "maxlen"."""
    results = [r for r in results if is_sweep(r) and r.kind == kind and r.median_ms]
    if not results:
        return {}
    fixed = "maxlen" if axis == "batch_size" else "batch_size"
    common = Counter(getattr(r.context, fixed) for r in results).most_common(1)[0][0]
    found: dict[str, dict[int, Result]] = {}
    for r in sorted(results, key=lambda r: r.run.started):  # newest run wins a point
        if getattr(r.context, fixed) == common:
            found.setdefault(r.backend, {})[getattr(r.context, axis)] = r
    return found


def ms_per_100_steps(points: dict[int, Result]) -> float | None:
    """Least-squares slope of median ms against maxlen, per 100 extra timesteps."""
    if len(points) < 2:
        return None
    x = np.array(sorted(points), dtype=float)
    y = np.array([points[n].median_ms for n in sorted(points)])
    return float(np.polyfit(x, y, 1)[0] * 100)


def saturation_batch(points: dict[int, Result]) -> str:
    """The batch size past which samples/s grows by less than SATURATION_GAIN."""
    sizes = sorted(points)
    throughput = [b / (points[b].median_ms / 1e3) for b in sizes]
    for b, now, after in zip(sizes, throughput, throughput[1:]):
        if after < now * (1 + SATURATION_GAIN):
            return str(b)
    return f"still growing at {sizes[-1]}" if sizes else MISSING


def render(results: Sequence[Result]) -> list[str]:
    """Markdown lines: per kind, a batch-size table, a length table and the growth figures."""
    out: list[str] = []
    for kind in ("train_step", "predict_step"):
        by_batch, by_length = series(results, kind, "batch_size"), series(results, kind, "maxlen")
        if not by_batch and not by_length:
            continue
        out += [f"## Scaling: {kind.replace('_', ' ')} (sweep profile)", ""]
        for title, along, axis in (("batch size", by_batch, "batch"), ("sequence length", by_length, "maxlen")):
            if not along:
                continue
            xs = sorted({x for points in along.values() for x in points})
            header = "| backend | " + " | ".join(f"{axis} {x}" for x in xs) + " |"
            out += [f"ms per step (samples/s) by {title}:", "", header, "|---|" + "---:|" * len(xs)]
            for backend, points in sorted(along.items()):
                cells = []
                for x in xs:
                    r = points.get(x)
                    cells.append(f"{r.median_ms:.1f} ({r.step.samples_per_s:.0f})" if r else MISSING)
                out.append(f"| {backend} | " + " | ".join(cells) + " |")
            out.append("")
        out += _against_the_machine(by_batch)
        out += ["| backend | ms per extra 100 timesteps | throughput stops growing at batch |", "|---|---:|---:|"]
        for backend in sorted(set(by_batch) | set(by_length)):
            slope = ms_per_100_steps(by_length.get(backend, {}))
            out.append(f"| {backend} | {'—' if slope is None else f'{slope:.1f}'} | "
                       f"{saturation_batch(by_batch[backend]) if backend in by_batch else '—'} |")
        out += ["", f"_Throughput stops growing: the next batch size adds under {SATURATION_GAIN:.0%} samples/s._",
                ""]
    return out


def _against_the_machine(by_batch: dict[str, dict[int, Result]]) -> list[str]:
    """Achieved GFLOP/s, the binding bound and the share of it reached, by batch size (records with a roofline)."""
    xs = sorted({x for points in by_batch.values() for x in points})
    table = {backend: [_roofline_cell(points.get(x)) for x in xs] for backend, points in sorted(by_batch.items())}
    if all(cell == MISSING for cells in table.values() for cell in cells):
        return []
    return ["GFLOP/s (binding bound, share of it reached) by batch size:", "",
            "| backend | " + " | ".join(f"batch {x}" for x in xs) + " |", "|---|" + "---:|" * len(xs),
            *(f"| {backend} | " + " | ".join(cells) + " |" for backend, cells in table.items()), ""]


def _roofline_cell(r: Result | None) -> str:
    roof = r and r.step and r.step.roofline
    if not roof:
        return MISSING
    median_s = r.median_ms / 1e3
    return f"{roof.flops / median_s / 1e9:.1f} ({roof.binding}, {roof.bounds_s[roof.binding] / median_s:.2f})"
