"""Does accuracy hold across backends? Answered from several seeds per backend, with statistics.

Input: accuracy records (``bench.results``), one per seed, from one or many files (a seed run
again keeps its newest result). Records are pooled when they are comparable: the same report
group (profile, data source, batch size, maxlen, device kind) and the same epochs, reviews used
and target. Per backend line (backend, device, Keras version, variant):

* final val_accuracy per seed, their mean and 95% t interval (``stats.mean_interval``);
* epochs and training seconds to the target val_accuracy (over the seeds that reached it, with how
  many did), and MLPerf's time score (``stats.mlperf_time``: an unreached seed counts as the
  slowest; more than one makes the score invalid).

Per pair of lines, the seeds pair: for one seed every backend starts from the same weights and sees
the same batches, so the per-seed differences are what is tested (``stats.equivalence``): a paired t
interval and a paired TOST, with the pair's correlation and the unpaired seeds it would take for the
same precision. Welch's unpaired test is used only where two lines share fewer than two seeds, and
the pair says so. Each verdict says what it means, beside its interval: "equivalent within ±m",
"different, but within ±m", "different, by more than ±m" or "not settled after N seeds" (with the
seeds a stated SD bound would need). val_accuracy is compared in points (``margin``, default 1
point); epochs and seconds as ratios (their logarithms against ±log(1 + ``time_margin``), default
10%). Epochs to the target are known only to the validation interval (one epoch): where that step is
coarser than the margin they are "not comparable at this resolution".

``levels`` (``stats.Levels``) are the tests' nominal levels: a fixed design's alpha, or those of one
look of a group-sequential design (``bench.sequential``). Only ``bench.results``, ``bench.stats``,
``bench.selection`` and ``bench.tables`` are used; the report model (``bench.report.model``) calls
``analyze`` and its markdown ``render_markdown`` for the parity section, and ``python -m bench
parity`` prints the same.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Iterable, Sequence
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
    epochs_to_target: float | None
    seconds_to_target: float | None
    history: tuple
    name: str
    file: str

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.final_val_accuracy is not None

    @property
    def validation_step(self) -> float | None:
        """Epochs between two validations: how finely ``epochs_to_target`` is known."""
        epochs = [h["epoch"] for h in self.history if h.get("val_accuracy") is not None]
        steps = [b - a for a, b in zip([0, *epochs], epochs, strict=False) if b > a]
        return min(steps) if steps else None


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
    mlperf: stats.MlperfTime | None = None

    @property
    def ok_runs(self) -> list[SeedRun]:
        return [r for r in self.runs if r.ok]

    @property
    def mlperf_seconds(self) -> float | None:
        return self.mlperf.score if self.mlperf else None

    def values(self, metric: str) -> list[float]:
        return [v for v in (_metric(r, metric) for r in self.ok_runs) if v is not None]

    def by_seed(self, metric: str) -> dict[int, float | None]:
        """Each ok seed's value of ``metric`` (None: the seed never reached the target)."""
        return {r.seed: _metric(r, metric) for r in self.ok_runs}


@dataclass
class PairVerdict:
    """One metric of one pair of backend lines: ``first`` against ``second``."""

    metric: str  # "val_accuracy", "epochs", "seconds"
    first: str
    second: str
    # The test's interval of no difference (95%; repeated in a sequential design): points for val_accuracy,
    # a ratio first / second for epochs and seconds.
    difference: stats.Interval | None
    test: stats.Equivalence | None  # None where the metric could not be compared
    verdict: str  # the sentence shown, with the interval it reads
    seeds: tuple[int, ...] = ()  # the seeds compared (paired), or every seed of both (Welch)
    note: str = ""  # how the seeds were used: paired or Welch, left-out seeds, seeds a plan would need

    @property
    def settled(self) -> bool:
        return self.test is not None and self.test.settled


@dataclass
class ParityGroup:
    key: ParityKey
    backends: list[BackendSeeds]
    pairs: list[PairVerdict] = field(default_factory=list)
    margin: float = DEFAULT_MARGIN
    time_margin: float = DEFAULT_TIME_MARGIN
    confidence: float = stats.DEFAULT_CONFIDENCE
    levels: stats.Levels = stats.FIXED
    sd_bound: float | None = None  # the paired SD of val_accuracy a plan states (for "seeds needed")

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
            confidence: float = stats.DEFAULT_CONFIDENCE, with_pairs: bool = True, levels: stats.Levels = stats.FIXED,
            sd_bound: float | None = None) -> list[ParityGroup]:
    """Per parity group: each backend line's seeds and intervals, and (``with_pairs``) each pair's verdicts.

    ``levels``: the tests' nominal levels (a fixed design's alpha, or one look's of a group-sequential
    design); ``sd_bound``: a stated upper bound of the per-seed differences' SD in val_accuracy, from
    which an unsettled pair says how many seeds would settle it.
    """
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
        group = ParityGroup(key, backends, margin=margin, time_margin=time_margin, confidence=confidence,
                            levels=levels, sd_bound=sd_bound)
        if with_pairs:
            group.pairs = [verdict for i, a in enumerate(backends) for b in backends[i + 1:]
                           for verdict in compare_pair(a, b, margin, time_margin, levels, sd_bound)]
        groups.append(group)
    return groups


def _summarize(entry: BackendSeeds, confidence: float) -> None:
    accuracies, epochs, seconds = (entry.values(m) for m in METRICS)
    entry.accuracy = stats.mean_interval(accuracies, confidence) if accuracies else None
    entry.epochs = stats.mean_interval(epochs, confidence) if epochs else None
    entry.seconds = stats.mean_interval(seconds, confidence) if seconds else None
    entry.mlperf = stats.mlperf_time(list(entry.by_seed("seconds").values())) if entry.ok_runs else None


def compare_pair(a: BackendSeeds, b: BackendSeeds, margin: float = DEFAULT_MARGIN,
                 time_margin: float = DEFAULT_TIME_MARGIN, levels: stats.Levels = stats.FIXED,
                 sd_bound: float | None = None) -> list[PairVerdict]:
    """The verdicts of ``a`` against ``b`` for each metric both have seeds for."""
    verdicts = [_accuracy_pair(a, b, margin, levels, sd_bound)]
    verdicts += [_time_pair(metric, a, b, time_margin, levels) for metric in ("epochs", "seconds")]
    return [v for v in verdicts if v is not None]


def _sides(a: BackendSeeds, b: BackendSeeds, metric: str) -> tuple[list[int], dict, dict]:
    x, y = a.by_seed(metric), b.by_seed(metric)
    return sorted(x.keys() & y.keys()), x, y


def _design(a: BackendSeeds, b: BackendSeeds, shared: list[int], x: dict, y: dict) -> str:
    """How the seeds are used, and which are left out."""
    if len(shared) < 2:
        return f"Welch (unpaired): {len(shared) or 'no'} seed{'s' if len(shared) != 1 else ''} in common"
    only = [(label, sorted(side.keys() - set(shared))) for label, side in ((a.label, x), (b.label, y))]
    left = "; ".join(f"seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))} only on {label}, left out"
                     for label, s in only if s)
    return left  # paired over every seed: the Seeds column says so


def _accuracy_pair(a: BackendSeeds, b: BackendSeeds, margin: float, levels: stats.Levels,
                   sd_bound: float | None) -> PairVerdict | None:
    shared, x, y = _sides(a, b, "val_accuracy")
    if not x or not y:
        return None
    paired = len(shared) >= 2
    if paired:
        first, second, seeds = [x[s] for s in shared], [y[s] for s in shared], tuple(shared)
    else:
        first, second, seeds = list(x.values()), list(y.values()), tuple(sorted(x.keys() | y.keys()))
    test = stats.equivalence(first, second, margin, levels, paired=paired)
    note = "; ".join(filter(None, [_design(a, b, shared, x, y), _needed(test, sd_bound)]))
    return PairVerdict("val_accuracy", a.label, b.label, test.zero_interval, test,
                       verdict_text(test, f"±{margin * 100:g} pt", _points), seeds, note)


def _needed(test: stats.Equivalence, sd_bound: float | None) -> str:
    """For an unsettled pair: the seeds a fixed design would need for 80% power at a true difference of 0."""
    if test.settled or test.sd is None or test.n < 2 or test.sd == 0:
        return ""
    kind = "paired SD" if test.paired else "SD per backend"
    plans = []
    if sd_bound:
        n = stats.seeds_for_equivalence(sd_bound, test.margin, paired=test.paired)
        plans.append(f"{_count(n)} at a {kind} ≤ {sd_bound * 100:.2g} pt (stated)")
    bound = stats.sd_upper_bound(test.sd, test.n)
    n = stats.seeds_for_equivalence(bound, test.margin, paired=test.paired)
    plans.append(f"{_count(n)} at this {kind}'s 95% upper bound ({bound * 100:.2g} pt)")
    return (f"seeds for {stats.DEFAULT_POWER:.0%} power at a true difference of 0 (fixed design): "
            + ", ".join(plans))


def _count(n: int | None) -> str:
    return f"more than {stats.MAX_SEEDS_NEEDED}" if n is None else str(n)


def _time_pair(metric: str, a: BackendSeeds, b: BackendSeeds, time_margin: float,
               levels: stats.Levels) -> PairVerdict | None:
    """Epochs or seconds to the target, as a ratio a / b tested on the log scale."""
    shared, x, y = _sides(a, b, metric)
    if not any(v is not None for v in x.values()) or not any(v is not None for v in y.values()):
        return None
    within = f"±{time_margin:.0%}"
    pair = lambda verdict, seeds=(), note="": PairVerdict(metric, a.label, b.label, None, None, verdict, seeds, note)
    compared = shared if len(shared) >= 2 else sorted(x.keys() | y.keys())
    unreached = [f"seed {s} on {label}" for s in compared
                 for label, side in ((a.label, x), (b.label, y)) if s in side and side[s] is None]
    if unreached:
        return pair(f"not comparable: never reached the target ({', '.join(unreached)})", tuple(shared),
                    "MLPerf counts a run that never reached the target as the slowest; a ratio needs both times")
    if metric == "epochs":
        step = max(filter(None, (r.validation_step for r in a.ok_runs + b.ok_runs)), default=1.0)
        reached = [v for v in [*x.values(), *y.values()] if v is not None]
        if step / min(reached) > time_margin:
            return pair(f"not comparable at this resolution: validated every {step:g} epoch{'s' if step != 1 else ''}, "
                        f"a step of {step / min(reached):.0%} against a margin of {within}", tuple(shared))
    paired = len(shared) >= 2
    if paired:
        first, second, seeds = np.log([x[s] for s in shared]), np.log([y[s] for s in shared]), tuple(shared)
    else:
        first, second = np.log(list(x.values())), np.log(list(y.values()))
        seeds = tuple(sorted(x.keys() | y.keys()))
    test = stats.equivalence(first, second, math.log1p(time_margin), levels, paired=paired)
    return PairVerdict(metric, a.label, b.label, _ratio(test.zero_interval), test,
                       verdict_text(test, within, _ratio_text), seeds, _design(a, b, shared, x, y))


def _ratio(logs: stats.Interval) -> stats.Interval:
    exp = lambda v: None if v is None else math.exp(v)  # exp(-inf) = 0: an unbounded ratio interval
    return stats.Interval(math.exp(logs.estimate), exp(logs.low), exp(logs.high), logs.n, logs.confidence)


def _points(interval: stats.Interval) -> str:
    return f"[{interval.low * 100:+.1f}, {interval.high * 100:+.1f}] pt"


def _ratio_text(interval: stats.Interval) -> str:
    return f"[{math.exp(interval.low):.2f}, {math.exp(interval.high):.2f}]x"


def verdict_text(test: stats.Equivalence, within: str,
                 shown: Callable[[stats.Interval], str] = _points) -> str:
    """The verdict as a sentence that says what it means, with the interval it was read from.

    The interval is the test's ``levels.margin_confidence`` interval (TOST's 90% at alpha 0.05): the
    margin verdicts read it; "different" also needs the test of no difference to reject.
    """
    interval = test.interval
    label = f"{test.levels.margin_confidence:.0%}" if not test.levels.sequential else (
        f"{1 - 2 * test.levels.alpha:.0%} repeated")
    if interval.low is None:
        where = ""
    elif math.isinf(interval.low):
        where = " (this look of the design may spend no error yet)"
    else:
        where = f", {label} CI {shown(interval)}"
    sentence = {
        stats.EQUIVALENT: f"equivalent within {within}",
        stats.DIFFERENT_WITHIN: f"different, but within {within}",
        stats.DIFFERENT_BEYOND: f"different, by more than {within}",
    }.get(test.verdict, f"not settled after {test.n} seed{'s' if test.n != 1 else ''}")
    if test.reason and not test.settled:
        sentence += f" ({test.reason})"
    return sentence + where


# --------------------------------------------------------------------------------------- rendering

METRIC_NAMES = {"val_accuracy": "final val_accuracy", "epochs": "epochs to target", "seconds": "seconds to target"}


def _interval_text(interval: stats.Interval | None, spec: str, scale: float = 1.0) -> str:
    if interval is None:
        return MISSING
    text = format(interval.estimate * scale, spec)
    if interval.low is None:
        return f"{text} (1 seed)"
    return f"{text} [{format(interval.low * scale, spec)}, {format(interval.high * scale, spec)}]"


def difference_text(verdict: PairVerdict) -> str:
    d = verdict.difference
    if d is None:
        return MISSING
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


def _mlperf_text(entry: BackendSeeds) -> str:
    m = entry.mlperf
    if m is None:
        return MISSING
    if m.score is None:
        return m.reason
    return f"{m.score:.1f}" + (" (1 seed unreached, counted as the slowest)" if m.unreached else "")


def pairing_text(verdict: PairVerdict) -> str:
    """'5 paired, r 0.86: as precise as ≈ 36 unpaired (saves ≈ 31)' or 'Welch, 10 seeds'."""
    test = verdict.test
    if test is None:
        return f"{len(verdict.seeds)} paired" if verdict.seeds else MISSING
    if not test.paired:
        return f"Welch, {len(verdict.seeds)} seeds"
    text = f"{test.n} paired"
    if test.correlation is not None:
        text += f", r {test.correlation:.2f}"
    if test.unpaired_seeds is not None:
        saved = test.unpaired_seeds - test.n
        text += (f": as precise as ≈ {test.unpaired_seeds:.0f} unpaired ("
                 + (f"saves ≈ {saved:.0f})" if saved >= 0 else f"costs ≈ {-saved:.0f}: the seeds move apart)"))
    return text


def backend_rows(group: ParityGroup) -> list[list[str]]:
    rows = []
    for b in group.backends:
        per_seed = " ".join(f"{r.final_val_accuracy:.3f}" if r.ok else f"seed {r.seed} failed" for r in b.runs)
        rows.append([b.label, _seeds_text(b.runs), per_seed, _interval_text(b.accuracy, ".3f"),
                     _reached_text(b, "epochs", ".2f"), _reached_text(b, "seconds", ".1f"), _mlperf_text(b)])
    return rows


def pair_rows(group: ParityGroup) -> list[list[str]]:
    rows = []
    for v in group.pairs:
        sign = "-" if v.metric == "val_accuracy" else "/"
        p_equal = v.test.p_equal if v.test else None
        p_tost = v.test.p_tost if v.test else None
        rows.append([f"{v.first} {sign} {v.second}", METRIC_NAMES[v.metric], pairing_text(v), difference_text(v),
                     fmt(p_equal, ".3f"), fmt(p_tost, ".3f"), v.verdict, v.note])
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
            repeated = " repeated" if group.levels.sequential else ""
            headers = ("Pair", "Metric", "Seeds", f"Difference [{1 - group.levels.alpha:.0%}{repeated} CI]",
                       "p (no difference)", "p (TOST)",
                       "Verdict", "Note")
            out += [table(headers, pair_rows(group)), ""]
        out += [_method(group), ""]
    return out


def _method(group: ParityGroup) -> str:
    levels = group.levels
    alpha = f"{levels.alpha:g}"
    design = (f"Group-sequential design, {levels.look}: each claim keeps its error at {alpha} over every look "
              f"(nominal levels at this look: {levels.margin:.4f} per one-sided test, {levels.zero:.4f} for the "
              "test of no difference; the verdict's interval is a repeated confidence interval)."
              if levels.sequential else f"Fixed design, alpha {alpha}.")
    return (
        f"Means with Student-t {group.confidence:.0%} intervals over seeds. Pairs are compared seed by seed (the same "
        "seed gives every backend the same initial weights and batch order): a paired t interval of the per-seed "
        "differences and a paired TOST; r is the pair's correlation over seeds, and \"as precise as ≈ N unpaired\" "
        "the seeds per backend an unpaired (Welch) comparison would need for the same precision. Welch's unpaired "
        "test is used only "
        "for backends sharing fewer than two seeds. val_accuracy in points, epochs and seconds as ratios (tested on "
        f"their logarithms). {design} Verdicts against ±{group.margin * 100:g} pt of val_accuracy and "
        f"±{group.time_margin:.0%} for epochs and seconds: \"equivalent\" when TOST's "
        f"{levels.margin_confidence:.0%} interval lies inside the margin; \"different, but within\" when it does and "
        "the test of no difference also rejects; \"different, by more than\" when that interval lies beyond the "
        "margin; else \"not settled\", with the seeds a fixed design would need for "
        f"{stats.DEFAULT_POWER:.0%} power at a true difference of 0 (statsmodels; from a stated SD bound, and from "
        "the 95% upper bound of the SD seen, never from the observed difference). Epochs to the target are known "
        "to the validation interval only, and are not compared where that step exceeds the margin. MLPerf time: "
        "the fastest and slowest seed dropped, the rest averaged, a seed that never reached the target counting as "
        "the slowest; more than one such seed makes it invalid.")


def to_json(groups: Sequence[ParityGroup]) -> list[dict]:
    """The parity groups as plain JSON values (every seed, interval, p-value and verdict)."""
    out = []
    for g in groups:
        out.append({
            "key": {**g.key._asdict(), "group": g.key.group._asdict()}, "label": g.key.label,
            "margin": g.margin, "time_margin": g.time_margin, "confidence": g.confidence,
            "levels": asdict(g.levels), "sd_bound": g.sd_bound,
            "backends": [{**asdict(b), "line": list(b.line)} for b in g.backends],
            "pairs": [asdict(p) for p in g.pairs],
        })
    return out


def render(results: Iterable[Result], margin: float = DEFAULT_MARGIN, time_margin: float = DEFAULT_TIME_MARGIN,
           fmt_name: str = "md", sd_bound: float | None = None, levels: stats.Levels = stats.FIXED) -> str:
    """``python -m bench parity``: the parity section on its own (md), or as JSON."""
    groups = analyze(results, margin, time_margin, levels=levels, sd_bound=sd_bound)
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
