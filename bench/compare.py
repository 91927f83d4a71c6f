"""Baseline vs current: a diff table, a regression gate, and exports for CI dashboards.

Benchmarks pair up by (name, group key), e.g. ``test_train_step[jax-cpu]`` under the same
profile, dataset source, batch size, maxlen and device kind; on each side the newest run wins.

Noise rule for latency. A benchmark is a REGRESSION only when both hold:

1. current median > baseline median * (1 + threshold)   (the slowdown is big enough to matter), and
2. current Q1 > baseline Q3                              (the interquartile ranges do not overlap:
   the faster half of the current rounds is slower than the slower half of the baseline rounds).

A change past the threshold whose ranges overlap is reported "within noise" and does not fail.
Faster is judged the same way, mirrored. A side with fewer than ``MIN_ROUNDS`` rounds (the accuracy
benchmark's epoch times) has no spread to judge noise by: its change is shown, marked "not gated",
and never fails (two runs of the same code measured one-epoch times 12% apart on this machine).

Accuracy (test_accuracy): a REGRESSION when final val_accuracy fell by more than ``accuracy_drop``
(absolute), when the current run has none while the baseline had one, or when its training
failed (e.g. a non-finite loss) and the baseline's did not.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.report import fmt_ms, latest, table
from bench.results import GroupKey, Result, load, results_of, write_json_atomic

DEFAULT_THRESHOLD = 0.10
DEFAULT_ACCURACY_DROP = 0.02
MIN_ROUNDS = 5  # fewer timed rounds than this give no usable spread for the noise rule
_EPS = 1e-12  # so a drop of exactly the tolerance, give or take float rounding, does not fail


@dataclass
class Change:
    """One metric of one benchmark, baseline against current."""

    name: str
    group: GroupKey
    metric: str  # "latency" (ms) or "val_accuracy"
    baseline: float | None
    current: float | None
    change: float | None  # latency: percent; accuracy: percentage points
    verdict: str
    regression: bool = False
    baseline_range: tuple[float, float] | None = None  # Q1, Q3 in ms
    current_range: tuple[float, float] | None = None
    note: str = ""


class NoResultsError(ValueError):
    """A side of the comparison has no readable results."""


def compare(baseline_paths: Iterable[str | os.PathLike], current_paths: Iterable[str | os.PathLike],
            threshold: float = DEFAULT_THRESHOLD,
            accuracy_drop: float = DEFAULT_ACCURACY_DROP) -> tuple[list[Change], list[Change]]:
    """Compare result files or folders; returns (every change, the regressions among them).

    Unreadable files are skipped (``results.load`` names them); a side with nothing readable
    raises NoResultsError.
    """
    sides = []
    for label, paths in (("baseline", baseline_paths), ("current", current_paths)):
        paths = list(paths)
        found = results_of(load(paths)[0])
        if not found:
            raise NoResultsError(f"no readable results in {label} {', '.join(map(str, paths)) or '(none)'}")
        sides.append(found)
    return compare_results(sides[0], sides[1], threshold, accuracy_drop)


def compare_results(baseline: Sequence[Result], current: Sequence[Result], threshold: float = DEFAULT_THRESHOLD,
                 accuracy_drop: float = DEFAULT_ACCURACY_DROP) -> tuple[list[Change], list[Change]]:
    """Like ``compare``, on results already loaded."""
    if threshold < 0 or accuracy_drop < 0:
        raise ValueError("threshold and accuracy_drop must be >= 0")
    key = lambda r: (r.name, r.group)
    base = {key(r): r for r in latest(baseline, key)}
    cur = {key(r): r for r in latest(current, key)}
    changes: list[Change] = []
    for name, group in sorted(base.keys() | cur.keys(), key=lambda k: (tuple(map(str, k[1])), k[0])):
        b, c = base.get((name, group)), cur.get((name, group))
        if b is None or c is None:
            verdict, note = ("new", "no baseline") if b is None else ("missing", "not in current results")
            only = b or c
            changes.append(Change(name, group, "latency", b and b.median_ms, c and c.median_ms, None, verdict,
                                  baseline_range=b and _range(b), current_range=c and _range(c), note=note))
            if only.kind == "accuracy":
                changes.append(Change(name, group, "val_accuracy", _final(b), _final(c), None, verdict, note=note))
            continue
        note = _note(b, c)
        changes.append(_latency(b, c, threshold, note))
        if b.kind == "accuracy" or c.kind == "accuracy":
            changes.append(_accuracy(b, c, accuracy_drop, note))
    return changes, [ch for ch in changes if ch.regression]


def _range(r: Result) -> tuple[float, float] | None:
    return None if r.stats is None else (r.ms("q1"), r.ms("q3"))


def _final(r: Result | None) -> float | None:
    return r.accuracy.final_val_accuracy if r is not None and r.accuracy else None


def _rounds(r: Result) -> int:
    return r.stats.rounds if r.stats else 0


def _latency(b: Result, c: Result, threshold: float, note: str) -> Change:
    change = Change(b.name, b.group, "latency", b.median_ms, c.median_ms, None, "no data",
                    baseline_range=_range(b), current_range=_range(c), note=note)
    if b.median_ms is None or c.median_ms is None or b.median_ms <= 0:
        return change
    change.change = (c.median_ms / b.median_ms - 1) * 100
    (b_q1, b_q3), (c_q1, c_q3) = change.baseline_range, change.current_range
    slower = c.median_ms > b.median_ms * (1 + threshold)
    faster = c.median_ms < b.median_ms * (1 - threshold)
    if min(_rounds(b), _rounds(c)) < MIN_ROUNDS:
        change.verdict = "not gated (too few rounds)" if slower or faster else "ok"
    elif slower and c_q1 > b_q3:
        change.verdict, change.regression = "REGRESSION (slower)", True
    elif faster and c_q3 < b_q1:
        change.verdict = "faster"
    elif slower or faster:
        change.verdict = "within noise"
    else:
        change.verdict = "ok"
    return change


def _accuracy(b: Result, c: Result, tolerance: float, note: str) -> Change:
    before, after = _final(b), _final(c)
    change = Change(b.name, b.group, "val_accuracy", before, after, None, "ok", note=note)
    failed = lambda r: r.accuracy is not None and r.accuracy.status != "ok"
    if failed(c) and not failed(b):
        change.verdict, change.regression = "REGRESSION (training failed)", True
        change.note = "; ".join(filter(None, [note, c.accuracy.status]))
    elif before is not None and after is None:
        change.verdict, change.regression = "REGRESSION (no accuracy)", True
    elif before is None or after is None:
        change.verdict = "no data"
    else:
        delta = after - before
        change.change = delta * 100
        if -delta > tolerance + _EPS:
            change.verdict, change.regression = "REGRESSION (accuracy)", True
        elif delta > tolerance + _EPS:
            change.verdict = "better"
    return change


def _note(b: Result, c: Result) -> str:
    """What differs between the two runs besides the code under test."""
    bc, cc = b.context, c.context
    notes = [f"{label} {x} → {y}" for label, x, y in (
        ("device", bc.device_name, cc.device_name), ("keras", bc.keras, cc.keras),
        (b.backend, bc.backend_version, cc.backend_version)) if x != y]
    if not c.run.finished:
        notes.append("current run incomplete")
    if not b.run.finished:
        notes.append("baseline run incomplete")
    return "; ".join(notes)


# -------------------------------------------------------------------------------------- rendering

def _cell(ch: Change, side: str) -> str:
    value = getattr(ch, side)
    if ch.metric == "val_accuracy":
        return "—" if value is None else f"{value:.3f}"
    spread = getattr(ch, f"{side}_range")
    text = f"{fmt_ms(value)} ms"
    if value is not None and spread and spread[0] != spread[1]:
        text += f" [{fmt_ms(spread[0])}-{fmt_ms(spread[1])}]"
    return "—" if value is None else text


def _change_text(ch: Change) -> str:
    if ch.change is None:
        return "—"
    return f"{ch.change:+.1f} pp" if ch.metric == "val_accuracy" else f"{ch.change:+.1f}%"


def render_comparison(changes: Sequence[Change], style: str = "md", threshold: float = DEFAULT_THRESHOLD,
                      accuracy_drop: float = DEFAULT_ACCURACY_DROP) -> str:
    """Diff tables, one per group ("md" or "plain"), and a one-line verdict."""
    headers = ("Benchmark", "Metric", "Baseline", "Current", "Change", "Verdict", "Note")
    groups: dict[GroupKey, list[Change]] = {}
    for ch in changes:
        groups.setdefault(ch.group, []).append(ch)
    out = []
    for group, members in groups.items():
        heading = f"## {group.label}" if style == "md" else f"{group.label}\n{'=' * len(group.label)}"
        cells = [(ch.name, ch.metric, _cell(ch, "baseline"), _cell(ch, "current"), _change_text(ch),
                  ch.verdict, ch.note) for ch in members]
        out += [heading, "", table(headers, cells, style), ""]
    regressions = [ch for ch in changes if ch.regression]
    rule = (f"threshold {threshold:.0%} with non-overlapping IQRs [Q1-Q3]; "
            f"accuracy drop > {accuracy_drop:g}")
    if regressions:
        out.append(f"{len(regressions)} regression(s) ({rule}): "
                   + ", ".join(f"{ch.name} {ch.metric}" for ch in regressions))
    else:
        out.append(f"No regressions ({rule}).")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------- exports

def export_name(r: Result) -> str:
    """A stable benchmark name for dashboards: the test id plus its comparison group."""
    g = r.group
    return f"{r.name} ({g.profile}, {g.dataset}, batch {g.batch_size}, maxlen {g.maxlen})"


def _extra(r: Result) -> str:
    parts = [f"median of {_rounds(r)} rounds"]
    if r.stats is not None:
        parts.append(f"Q1: {r.ms('q1'):.3f} ms, Q3: {r.ms('q3'):.3f} ms")
    c = r.context
    parts.append(f"keras {c.keras}, {c.backend} {c.backend_version}, {c.device_name}")
    return "\n".join(parts)


def _throughput(r: Result) -> float | None:
    return r.step.samples_per_s if r.step else None


def github_action_benchmark(results: Sequence[Result]) -> dict[str, list[dict]]:
    """github-action-benchmark input for ``tool: customSmallerIsBetter`` and ``customBiggerIsBetter``.

    Each list holds {"name", "unit", "value", "range", "extra"} entries ("range" and "extra" are
    strings): latency in ms (smaller is better); val_accuracy and samples/s (bigger is better).
    """
    smaller: list[dict] = []
    bigger: list[dict] = []
    for r in latest(results, lambda r: (r.name, r.group)):
        name = export_name(r)
        if r.median_ms is not None:
            entry = {"name": f"{name} latency", "unit": "ms", "value": round(r.median_ms, 4),
                     "range": f"± {r.ms('iqr') / 2:.4f}",  # half the IQR: the median's middle-half spread
                     "extra": _extra(r)}
            smaller.append(entry)
        if _final(r) is not None:
            bigger.append({"name": f"{name} val_accuracy", "unit": "accuracy", "value": round(_final(r), 6),
                           "extra": _extra(r)})
        if _throughput(r) is not None:
            bigger.append({"name": f"{name} throughput", "unit": "samples/s", "value": round(_throughput(r), 3),
                           "extra": _extra(r)})
    return {"customSmallerIsBetter": smaller, "customBiggerIsBetter": bigger}


def write_github_action_benchmark(results: Sequence[Result], folder: str | os.PathLike) -> list[Path]:
    """Write ``customSmallerIsBetter.json`` and ``customBiggerIsBetter.json`` into ``folder``.

    Two files because one github-action-benchmark step reads one file with one ``tool``.
    """
    written = []
    for tool, entries in github_action_benchmark(results).items():
        path = Path(folder) / f"{tool}.json"
        write_json_atomic(path, entries)
        written.append(path)
    return written


def bencher_metric_format(results: Sequence[Result]) -> dict[str, dict]:
    """Bencher Metric Format: {benchmark: {"latency": {value, lower_value, upper_value} in ns, ...}}.

    Latency bounds are Q1 and Q3; "throughput" is samples/s; "accuracy" is final val_accuracy.
    """
    document: dict[str, dict] = {}
    for r in latest(results, lambda r: (r.name, r.group)):
        measures: dict[str, dict] = {}
        if r.stats is not None:
            measures["latency"] = {"value": r.median_ms * 1e6, "lower_value": r.ms("q1") * 1e6,
                                   "upper_value": r.ms("q3") * 1e6}
        if _throughput(r) is not None:
            measures["throughput"] = {"value": _throughput(r)}
        if _final(r) is not None:
            measures["accuracy"] = {"value": _final(r)}
        if measures:
            document[export_name(r)] = measures
    return document


def write_bencher(results: Sequence[Result], path: str | os.PathLike) -> Path:
    path = Path(path)
    write_json_atomic(path, bencher_metric_format(results))
    return path
