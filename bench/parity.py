"""Does accuracy hold across backends? Answered from several seeds per backend, with statistics.

Input: accuracy records (``bench.results``), one per seed, from one or many files (a seed run
again keeps its newest result). Records are pooled when they are comparable: the same report
group (profile, data source, batch size, maxlen, device kind) and the same epochs, reviews used
and target. Per backend line (backend, device, Keras version, variant):

* final val_accuracy per seed, their mean and 95% t interval (``stats.mean_interval``);
* epochs and training seconds to the target val_accuracy, over the seeds that reached it, with
  MLPerf's score for the time (drop the fastest and slowest run, average the rest).

Per pair of lines, the difference with Welch's interval and a verdict from an equivalence test
(``stats.equivalence``: TOST): "equivalent within ±margin", "different", or "not enough seeds to
tell" with the seeds per backend that would settle it. val_accuracy is compared in points
(``margin``, default 1 point); epochs and seconds as ratios (TOST on their logarithms against
±log(1 + ``time_margin``), default 10%), since backends differ in speed by factors.

Only ``bench.results``, ``bench.stats``, ``bench.selection`` and ``bench.tables`` are used; the report
model (``bench.report.model``) calls ``analyze`` and its markdown ``render_markdown`` for the parity
section, and ``python -m bench parity`` prints the same.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import numpy as np

from bench import stats
from bench.results import GroupKey, Result
from bench.selection import started_order
from bench.tables import MISSING, data_description, fmt, table

DEFAULT_MARGIN = 0.01  # one point of val_accuracy
DEFAULT_TIME_MARGIN = 0.10  # ±10% in epochs or seconds to the target


def margin_points(text: str) -> float:
    """argparse type for --margin: "1pt" / "0.5 pt" / "1%" (points of accuracy) or a fraction "0.01"."""
    raw = text.strip().lower()
    match = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*(pt|pts|pp|points?|%)?", raw)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a margin: write e.g. 1pt, 0.5pt or 0.01")
    value = float(match.group(1))
    if match.group(2):
        value /= 100
    elif value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is ambiguous: write {raw}pt, or a fraction below 1")
    return value


# ---------------------------------------------------------------------------------------- records

class ParityKey(NamedTuple):
    """What makes accuracy records of different seeds and backends comparable."""

    group: GroupKey
    epochs: int
    train_samples: int
    val_samples: int
    target: float

    @property
    def label(self) -> str:
        return (f"{self.group.label} · {self.epochs} epoch{'s' if self.epochs != 1 else ''} · "
                f"{self.train_samples:,} / {self.val_samples:,} reviews")


@dataclass(frozen=True)
class SeedRun:
    """One seed of one backend line."""

    seed: int
    status: str
    final_val_accuracy: float | None
    epochs_to_target: int | None
    seconds_to_target: float | None
    history: tuple
    name: str
    file: str

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.final_val_accuracy is not None


@dataclass
class BackendSeeds:
    """One backend line of a parity group: its seeds and their summaries."""

    label: str
    line: tuple
    data: str  # where its accuracy came from (tables.data_description)
    runs: list[SeedRun]
    accuracy: stats.Interval | None = None
    epochs: stats.Interval | None = None
    seconds: stats.Interval | None = None
    mlperf_seconds: float | None = None

    @property
    def ok_runs(self) -> list[SeedRun]:
        return [r for r in self.runs if r.ok]

    def values(self, metric: str) -> list[float]:
        return [v for v in (_metric(r, metric) for r in self.ok_runs) if v is not None]


@dataclass
class PairVerdict:
    """One metric of one pair of backend lines: ``first`` against ``second``."""

    metric: str  # "val_accuracy", "epochs", "seconds"
    first: str
    second: str
    difference: stats.Interval  # points for val_accuracy; a ratio first/second for epochs and seconds
    test: stats.Equivalence
    verdict: str  # the sentence shown


@dataclass
class ParityGroup:
    key: ParityKey
    backends: list[BackendSeeds]
    pairs: list[PairVerdict] = field(default_factory=list)
    margin: float = DEFAULT_MARGIN
    time_margin: float = DEFAULT_TIME_MARGIN
    confidence: float = stats.DEFAULT_CONFIDENCE

    @property
    def several_seeds(self) -> bool:
        return any(len(b.ok_runs) > 1 for b in self.backends)


METRICS = ("val_accuracy", "epochs", "seconds")


def _metric(run: SeedRun, metric: str) -> float | None:
    return {"val_accuracy": run.final_val_accuracy, "epochs": run.epochs_to_target,
            "seconds": run.seconds_to_target}[metric]


def seed_run(result: Result) -> SeedRun:
    """One accuracy result as a seed run: final accuracy, epochs and training seconds to its target."""
    acc = result.accuracy
    epochs_to_target = next((h["epoch"] for h in acc.history
                             if h.get("val_accuracy") is not None and h["val_accuracy"] >= acc.target_accuracy), None)
    return SeedRun(seed=result.context.seed, status=acc.status, final_val_accuracy=acc.final_val_accuracy,
                   epochs_to_target=epochs_to_target, seconds_to_target=acc.time_to_accuracy_s,
                   history=tuple(acc.history), name=result.name, file=result.file)


def parity_key(result: Result) -> ParityKey:
    acc = result.accuracy
    return ParityKey(result.group, result.context.epochs, acc.train_samples_used, acc.val_samples_used,
                     acc.target_accuracy)


def line_label(line: tuple, lines: Iterable[tuple], versions: dict[tuple, str]) -> str:
    """'jax 0.10.2', plus device, Keras version or variant where they tell lines of a group apart."""
    lines = list(lines)
    backend, device_name, keras, variant = line
    label = f"{backend} {versions.get(line, '')}".strip()
    if variant != "default":
        label += f" [{variant}]"
    if len({ln[1] for ln in lines}) > 1:
        label += f" on {device_name}"
    if len({ln[2] for ln in lines}) > 1:
        label += f", keras {keras}"
    return label


# ---------------------------------------------------------------------------------------- analysis

def collect(results: Iterable[Result]) -> dict[ParityKey, dict[tuple, list[Result]]]:
    """Accuracy results per parity key and backend line, one per seed (the newest run of each seed)."""
    newest: dict[tuple, Result] = {}
    for r in results:
        if r.kind != "accuracy" or r.accuracy is None:
            continue
        k = (parity_key(r), r.line, r.context.seed)
        if k not in newest or started_order(r) > started_order(newest[k]):
            newest[k] = r
    grouped: dict[ParityKey, dict[tuple, list[Result]]] = {}
    for (key, line, _), r in newest.items():
        grouped.setdefault(key, {}).setdefault(line, []).append(r)
    for lines in grouped.values():
        for members in lines.values():
            members.sort(key=lambda r: r.context.seed)
    return dict(sorted(grouped.items(), key=lambda item: tuple(map(str, item[0]))))


def analyze(results: Iterable[Result], margin: float = DEFAULT_MARGIN, time_margin: float = DEFAULT_TIME_MARGIN,
            confidence: float = stats.DEFAULT_CONFIDENCE, with_pairs: bool = True) -> list[ParityGroup]:
    """Per parity group: each backend line's seeds and intervals, and (``with_pairs``) each pair's verdicts."""
    groups = []
    for key, lines in collect(results).items():
        versions = {line: str(members[0].context.backend_version) for line, members in lines.items()}
        backends = []
        for line, members in sorted(lines.items(), key=lambda item: tuple(map(str, item[0]))):
            entry = BackendSeeds(label=line_label(line, lines, versions), line=line,
                                 data=data_description(members[0].context.dataset),
                                 runs=[seed_run(r) for r in members])
            _summarize(entry, confidence)
            backends.append(entry)
        group = ParityGroup(key, backends, margin=margin, time_margin=time_margin, confidence=confidence)
        if with_pairs:
            group.pairs = [verdict for i, a in enumerate(backends) for b in backends[i + 1:]
                           for verdict in compare_pair(a, b, margin, time_margin, confidence)]
        groups.append(group)
    return groups


def _summarize(entry: BackendSeeds, confidence: float) -> None:
    accuracies, epochs, seconds = (entry.values(m) for m in METRICS)
    entry.accuracy = stats.mean_interval(accuracies, confidence) if accuracies else None
    entry.epochs = stats.mean_interval(epochs, confidence) if epochs else None
    entry.seconds = stats.mean_interval(seconds, confidence) if seconds else None
    entry.mlperf_seconds = stats.trimmed_mean_mlperf(seconds) if seconds else None


def compare_pair(a: BackendSeeds, b: BackendSeeds, margin: float = DEFAULT_MARGIN,
                 time_margin: float = DEFAULT_TIME_MARGIN,
                 confidence: float = stats.DEFAULT_CONFIDENCE) -> list[PairVerdict]:
    """The verdicts of ``a`` against ``b`` for each metric both have values for."""
    verdicts = []
    for metric in METRICS:
        x, y = a.values(metric), b.values(metric)
        if not x or not y:
            continue
        if metric == "val_accuracy":
            difference = stats.welch_difference(x, y, confidence)
            test = stats.equivalence(x, y, margin)
            within = f"±{margin * 100:g} pt"
        else:
            # Ratios: compared on the log scale, shown back as first / second.
            logs = stats.welch_difference(np.log(x), np.log(y), confidence)
            difference = stats.Interval(math.exp(logs.estimate), _exp(logs.low), _exp(logs.high), logs.n,
                                        confidence)
            test = stats.equivalence(np.log(x), np.log(y), math.log1p(time_margin))
            within = f"±{time_margin:.0%}"
        verdicts.append(PairVerdict(metric, a.label, b.label, difference, test, verdict_text(test, within)))
    return verdicts


def _exp(value: float | None) -> float | None:
    return None if value is None else math.exp(value)


def verdict_text(test: stats.Equivalence, within: str) -> str:
    if test.verdict == stats.EQUIVALENT:
        return f"equivalent within {within}"
    if test.verdict == stats.DIFFERENT:
        return "different"
    if test.seeds_needed is not None:
        return f"not enough seeds to tell: ~{test.seeds_needed} seeds per backend would settle it"
    return f"not enough seeds to tell ({test.reason})" if test.reason else "not enough seeds to tell"


# --------------------------------------------------------------------------------------- rendering

METRIC_NAMES = {"val_accuracy": "final val_accuracy", "epochs": "epochs to target", "seconds": "seconds to target"}


def _interval_text(interval: stats.Interval | None, spec: str, scale: float = 1.0) -> str:
    if interval is None:
        return MISSING
    text = format(interval.estimate * scale, spec)
    if interval.low is None:
        return f"{text} (1 seed)"
    return f"{text} [{format(interval.low * scale, spec)}, {format(interval.high * scale, spec)}]"


def _difference_text(verdict: PairVerdict) -> str:
    d = verdict.difference
    if verdict.metric == "val_accuracy":
        text = f"{d.estimate * 100:+.1f} pt"
        return text if d.low is None else f"{text} [{d.low * 100:+.1f}, {d.high * 100:+.1f}]"
    text = f"{d.estimate:.2f}x"
    return text if d.low is None else f"{text} [{d.low:.2f}, {d.high:.2f}]"


def _seeds_text(runs: Sequence[SeedRun]) -> str:
    seeds = [r.seed for r in runs]
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{len(seeds)} ({seeds[0]} to {seeds[-1]})"
    return f"{len(seeds)} ({', '.join(map(str, seeds))})"


def _reached_text(entry: BackendSeeds, metric: str, spec: str) -> str:
    reached, ok = len(entry.values(metric)), len(entry.ok_runs)
    if not reached:
        return f"not reached ({ok} seed{'s' if ok != 1 else ''})"
    text = _interval_text(getattr(entry, metric), spec)
    return text if reached == ok else f"{text}, {reached} of {ok} reached"


def backend_rows(group: ParityGroup) -> list[list[str]]:
    rows = []
    for b in group.backends:
        per_seed = " ".join(f"{r.final_val_accuracy:.3f}" if r.ok else f"seed {r.seed} failed" for r in b.runs)
        rows.append([b.label, _seeds_text(b.runs), per_seed, _interval_text(b.accuracy, ".3f"),
                     _reached_text(b, "epochs", ".2f"), _reached_text(b, "seconds", ".1f"),
                     fmt(b.mlperf_seconds, ".1f")])
    return rows


def pair_rows(group: ParityGroup) -> list[list[str]]:
    rows = []
    for v in group.pairs:
        sign = "-" if v.metric == "val_accuracy" else "/"
        rows.append([f"{v.first} {sign} {v.second}", METRIC_NAMES[v.metric], _difference_text(v),
                     fmt(v.test.p_equal, ".3f"), fmt(v.test.p_tost, ".3f"), v.verdict])
    return rows


def render_markdown(groups: Sequence[ParityGroup], heading: str = "##") -> list[str]:
    """The parity section as markdown lines: per group a table of backends and one of pairs."""
    out = []
    for group in groups:
        target = f"{group.key.target:g}"
        conf = f"{group.confidence:.0%}"
        out += [f"{heading} Parity: {group.key.label}", ""]
        data = sorted({b.data for b in group.backends})
        out += [f"Data: {'; '.join(data)}.", ""]
        headers = ("Backend", "Seeds", "final val_accuracy per seed", f"Mean [{conf} CI]",
                   f"Epochs to {target}: mean [{conf} CI]", f"Seconds to {target}: mean [{conf} CI]",
                   "MLPerf time s")
        out += [table(headers, backend_rows(group)), ""]
        if group.pairs:
            headers = ("Pair", "Metric", f"Difference [{conf} CI]", "p (equal)", "p (TOST)", "Verdict")
            out += [table(headers, pair_rows(group)), ""]
        out += [
            f"Means with Student-t {conf} intervals over seeds; differences with Welch's interval (val_accuracy in "
            f"points, epochs and seconds as ratios). Verdicts: TOST (two one-sided Welch t tests, alpha "
            f"{stats.DEFAULT_ALPHA:g}) against ±{group.margin * 100:g} pt of val_accuracy and ±{group.time_margin:.0%} "
            "for epochs and seconds to the target (on their logarithms); \"different\" when Welch's two-sided "
            "test rejects equal means and TOST does not show equivalence; seeds needed for "
            f"{stats.DEFAULT_POWER:.0%} power at the observed difference and spread (noncentral t). Epochs and "
            "seconds count only the seeds that reached the target; MLPerf time: the fastest and slowest seed "
            "dropped, the rest averaged (3 seeds or more).", ""]
    return out


def to_json(groups: Sequence[ParityGroup]) -> list[dict]:
    """The parity groups as plain JSON values (every seed, interval, p-value and verdict)."""
    out = []
    for g in groups:
        out.append({
            "key": {**g.key._asdict(), "group": g.key.group._asdict()}, "label": g.key.label,
            "margin": g.margin, "time_margin": g.time_margin, "confidence": g.confidence,
            "backends": [{**asdict(b), "line": list(b.line)} for b in g.backends],
            "pairs": [asdict(p) for p in g.pairs],
        })
    return out


def render(results: Iterable[Result], margin: float = DEFAULT_MARGIN, time_margin: float = DEFAULT_TIME_MARGIN,
           fmt_name: str = "md") -> str:
    """``python -m bench parity``: the parity section on its own (md), or as JSON."""
    groups = analyze(results, margin, time_margin)
    if fmt_name == "json":
        import json

        return json.dumps({"parity": to_json(groups)}, indent=2, default=str)
    if not groups:
        return "No accuracy results.\n"
    lines = ["# Does accuracy hold across backends?", "", *render_markdown(groups)]
    if not any(g.several_seeds for g in groups):
        lines += ["_One seed per backend: run the accuracy benchmark with --seeds 5 (or --profile parity) "
                  "to see the seed-to-seed spread._", ""]
    return "\n".join(lines)
