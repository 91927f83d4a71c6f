"""Baseline vs current: a diff table, a regression gate, and exports for CI dashboards.

Benchmarks pair up by (name, group key), e.g. ``test_train_step[jax-cpu]`` under the same
profile, dataset source, batch size, maxlen and device kind; on each side the newest run wins, with
all its processes (``python -m bench run --repeat N`` runs N processes per backend as one run).

Noise rule for latency. The noise that decides a verdict is between processes (two runs of the same
code a minute apart moved by 8-10% here, while one run's rounds spread by about ±2%), so each side
is its process medians, and the rule is ``bench.gate``'s:

1. not gated, and said why, when a side has fewer than ``min_processes`` processes, when the
   machines differ, or when the process medians fall into two modes (``stats.process_modes``);
2. a t test on log process medians per line: paired where the two sides are the blocks of one
   interleaved run (``interleaved_blocks``: ``ab``'s repeats), else Welch's (``stats.log_ratio_test``),
   with this machine's calibrated between-process variance pooled in where ``python -m bench
   calibrate`` measured one;
3. Holm over the run's gated lines (``stats.holm``): an A/A run false-alarms at most 1 - confidence
   (5%) in all, however many lines it has;
4. REGRESSION: Holm-adjusted p (slower) below that and the ratio of geometric means of process
   medians past ``1 + threshold``; "faster" mirrored; "within noise" past the threshold but not
   significant.

Each gated line shows the ratio with its test's interval, the Holm-adjusted p, and "detects ≥": the
slowdown that a comparison with this line's noise flags with at least 80% power (``stats.detectable_slowdown``).
The summary counts what was not gated; ``exit_status`` gives ``EXIT_NOT_GATED`` (3) when a shared
line could not be gated or the sides share no line, so that "no regressions" is never said of a
comparison that gated nothing.

Machines: every result records a fingerprint (``bench.fingerprint``). When the two sides differ in CPU
model, usable cores, threads or GPU, latency is "not comparable: CPU model differs: A vs B" and is
never gated; version changes (OS, Python, driver, backend, Keras) are noted on each line.

Accuracy (test_accuracy): a REGRESSION when final val_accuracy fell by more than ``accuracy_drop``
(absolute), when the current run has none while the baseline had one, or when its training
failed (e.g. a non-finite loss) and the baseline's did not. The seeds of one backend line
(test_accuracy[jax-cpu-seed0], -seed1, ...) are judged together, on their mean: when both sides
have several seeds, a drop past ``accuracy_drop`` is a REGRESSION only when it is also outside the
seed-to-seed spread (the 95% interval of the difference excludes 0), else "within seed spread". The
seeds pair (a seed starts both sides from the same weights and batch order), so the interval is the
paired t interval over the seeds both sides ran (``seed_spread``); Welch's unpaired interval only
when they share fewer than two. With one seed on a side the drop alone decides, and the note says
that the seed spread could not be judged.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import gate as rule
from bench import packages, parity, stats
from bench.calibrate import noise_key
from bench.fingerprint import LABELS, MACHINE_KEYS, describe, differences
from bench.results import GroupKey, Result, load, results_of, write_json_atomic
from bench.selection import aggregate, latest
from bench.tables import MISSING, fmt, fmt_ms, table

DEFAULT_THRESHOLD = rule.DEFAULT_THRESHOLD
DEFAULT_ACCURACY_DROP = 0.02
DEFAULT_CONFIDENCE = 1 - rule.DEFAULT_ALPHA
MIN_PROCESSES = rule.MIN_PROCESSES
EXIT_OK, EXIT_REGRESSION, EXIT_NOT_GATED = 0, 1, 3  # 2 is a usage error (bench.commands)
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
    baseline_range: tuple[float, float] | None = None  # ms: process medians' min-max, or one process's Q1-Q3
    current_range: tuple[float, float] | None = None
    note: str = ""
    processes: tuple[int, int] | None = None  # baseline, current
    test: stats.RatioTest | None = None  # latency, when gated
    p_slower: float | None = None  # Holm-adjusted over the comparison's gated lines
    noise: stats.ProcessNoise | None = None  # this machine's calibrated noise, when found for this benchmark
    detects: float | None = None  # the slowdown this line's noise lets the gate flag with at least 80% power
    modes: stats.Modes | None = None  # when the process medians fall into two modes
    gated: bool = False  # judged by the rule (latency) or on its values (accuracy)
    shared: bool = True  # both sides have this line
    reasons: tuple[tuple[str, str], ...] = ()  # the rule's refusal: (kind, words) per reason (bench.gate)


class NoResultsError(ValueError):
    """A side of the comparison has no readable results."""


def compare(baseline_paths: Iterable[str | os.PathLike], current_paths: Iterable[str | os.PathLike],
            threshold: float = DEFAULT_THRESHOLD, accuracy_drop: float = DEFAULT_ACCURACY_DROP, *,
            confidence: float = DEFAULT_CONFIDENCE, noise: Mapping[str, stats.ProcessNoise] | None = None,
            min_processes: int = MIN_PROCESSES) -> tuple[list[Change], list[Change]]:
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
    return compare_results(sides[0], sides[1], threshold, accuracy_drop, confidence=confidence, noise=noise,
                           min_processes=min_processes)


SIMULATED_VERDICT = "not compared (simulated vs real devices)"


def compare_results(baseline: Sequence[Result], current: Sequence[Result], threshold: float = DEFAULT_THRESHOLD,
                    accuracy_drop: float = DEFAULT_ACCURACY_DROP, *, confidence: float = DEFAULT_CONFIDENCE,
                    noise: Mapping[str, stats.ProcessNoise] | None = None,
                    min_processes: int = MIN_PROCESSES) -> tuple[list[Change], list[Change]]:
    """Like ``compare``, on results already loaded.

    ``noise`` maps ``noise_key(result)`` to this machine's between-process noise (``bench.calibrate``);
    ``min_processes`` is the fewest processes a side that the latency gate acts on. The latency
    lines are judged together (``bench.gate.judge``), since Holm's correction spans all of them.
    """
    if threshold < 0 or accuracy_drop < 0:
        raise ValueError("threshold and accuracy_drop must be >= 0")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    key = lambda r: (r.name, r.group)
    base_all, cur_all = _processes(latest(baseline, key), key), _processes(latest(current, key), key)
    base = {k: members[-1] for k, members in base_all.items()}
    cur = {k: members[-1] for k, members in cur_all.items()}
    changes: list[Change] = []
    pending: list[tuple[Change, rule.Line]] = []  # latency lines the rule judges, all at once
    # Accuracy is judged per backend line over all its seeds: one val_accuracy change per line.
    base_seeds, cur_seeds = _seeds_by_line(base.values()), _seeds_by_line(cur.values())
    judged: set[tuple] = set()
    for name, group in sorted(base.keys() | cur.keys(), key=lambda k: (tuple(map(str, k[1])), k[0])):
        b, c = base.get((name, group)), cur.get((name, group))
        if b is None or c is None:
            verdict, note = ("new", "no baseline") if b is None else ("missing", "not in current results")
            changes.append(Change(name, group, "latency", b and b.median_ms, c and c.median_ms, None, verdict,
                                  baseline_range=b and _range(b), current_range=c and _range(c), note=note,
                                  shared=False))
        elif b.simulated != c.simulated:
            # Devices simulated on one CPU (bench/distributed/) are no baseline for real ones, nor the reverse.
            changes.append(Change(name, group, "latency", b.median_ms, c.median_ms, None, SIMULATED_VERDICT,
                                  note=f"baseline {'simulated' if b.simulated else 'real'}, current "
                                       f"{'simulated' if c.simulated else 'real'} devices"))
            continue
        else:
            change, line = _latency(base_all[(name, group)], cur_all[(name, group)], _note(b, c), noise or {})
            changes.append(change)
            if line is not None:
                pending.append((change, line))
        line = (seedless(name), group)
        if (b or c).kind == "accuracy" and line not in judged:
            judged.add(line)
            changes.append(_accuracy(base_seeds.get(line, []), cur_seeds.get(line, []), accuracy_drop))
    judged = rule.judge([line for _, line in pending], threshold, 1 - confidence, min_processes, confidence)
    for (change, _), judgement in zip(pending, judged, strict=True):
        change.verdict, change.regression, change.gated = judgement.verdict, judgement.regression, judgement.gated
        change.test, change.p_slower, change.detects, change.modes = (judgement.test, judgement.p_slower,
                                                                      judgement.detects, judgement.modes)
        change.reasons = judgement.reasons
        if judgement.modes is not None:
            change.note = "; ".join(filter(None, [judgement.modes.describe(), change.note]))
    return changes, [ch for ch in changes if ch.regression]


@dataclass(frozen=True)
class Summary:
    """What a comparison amounts to: its regressions, and what it could not gate, with why."""

    regressions: list[Change]
    gated: list[Change]  # shared lines judged (latency by the rule, accuracy on its values)
    not_gated: list[Change]  # shared lines that could not be judged: the verdict says why
    unshared: list[Change]  # lines on one side only ("new", "missing")

    @property
    def exit_status(self) -> int:
        """EXIT_REGRESSION on a regression; else EXIT_NOT_GATED when a shared line was not gated or no line
        is shared; else EXIT_OK."""
        if self.regressions:
            return EXIT_REGRESSION
        return EXIT_NOT_GATED if self.not_gated or not (self.gated or self.not_gated) else EXIT_OK


def summarize(changes: Sequence[Change]) -> Summary:
    shared = [ch for ch in changes if ch.shared]
    judged = lambda ch: ch.gated or (ch.metric == "val_accuracy" and ch.verdict != "no data")
    return Summary([ch for ch in changes if ch.regression], [ch for ch in shared if judged(ch)],
                   [ch for ch in shared if not judged(ch)], [ch for ch in changes if not ch.shared])


def gate(baseline: Sequence[Result], current: Sequence[Result], *, threshold: float = DEFAULT_THRESHOLD,
         accuracy_drop: float = DEFAULT_ACCURACY_DROP, confidence: float = DEFAULT_CONFIDENCE,
         min_processes: int = MIN_PROCESSES, noise: Mapping[str, stats.ProcessNoise] | None = None,
         match: str = "group", style: str = "md") -> tuple[str, Summary]:
    """The verdict as ``compare`` and ``ab`` print it: the diff tables and the summary (its ``exit_status``).

    ``match="name"`` pairs benchmarks by name alone (``pair_by_name``: an A/B of settings), and each
    line then notes what differs between its two sides.
    """
    paired, notes = pair_by_name(baseline, current) if match == "name" else (current, {})
    changes, _ = compare_results(baseline, paired, threshold, accuracy_drop, confidence=confidence,
                                 noise=noise, min_processes=min_processes)
    for change in changes:
        change.note = "; ".join(filter(None, [notes.get(change.name), change.note]))
    text = render_comparison(changes, style, threshold, accuracy_drop, confidence, min_processes)
    return text, summarize(changes)


def package_header(baseline: Sequence[Result], current: Sequence[Result]) -> str:
    """"Packages: keras 3.12.0 → 3.15.1." when the two sides ran on different package sets, else "".

    Each side's set is that of its newest process that recorded one; a side whose processes ran on
    several sets says so.
    """
    sets = []
    for side in (baseline, current):
        recorded = [r.run.packages for r in sorted(side, key=lambda r: r.run.started) if r.run.packages]
        sets.append(recorded)
    if not all(sets):
        return ""
    before, after = sets[0][-1], sets[1][-1]
    notes = [f"the {name} processes ran on {count} different package sets" for name, count in
             (("baseline", len({p.id for p in sets[0]})), ("current", len({p.id for p in sets[1]}))) if count > 1]
    changed = packages.differences(before.installed, after.installed) if before.id != after.id else []
    if not changed and not notes:
        return ""
    text = f"Packages: {', '.join(changed)}." if changed else "Packages: the same sets on both sides."
    return text + (f" Note: {'; '.join(notes)}." if notes else "") + "\n\n"


SEED_SUFFIX = re.compile(r"-seed\d+(?=\]$)")


def seedless(name: str) -> str:
    """test_accuracy[jax-cpu-seed3] -> test_accuracy[jax-cpu]: the line all seeds of a benchmark share."""
    return SEED_SUFFIX.sub("", name)


def _seeds_by_line(results: Iterable[Result]) -> dict[tuple, list[Result]]:
    lines: dict[tuple, list[Result]] = {}
    for r in results:
        if r.kind == "accuracy":
            lines.setdefault((seedless(r.name), r.group), []).append(r)
    return lines


def pair_by_name(baseline: Sequence[Result], current: Sequence[Result]) -> tuple[list[Result], dict[str, str]]:
    """For an A/B of settings (e.g. --maxlen 200 against 220): current relabelled into the baseline's group.

    A current benchmark whose name the baseline holds in exactly one other comparison group takes
    that group (profile, data source, batch size, maxlen, device kind), so the two pair up; returns
    the relabelled results and, per name, a note of what really differed, e.g. "paired by name:
    maxlen 200 → 220". Everything else is returned as it was.
    """
    groups: dict[str, set[GroupKey]] = {}
    for r in baseline:
        groups.setdefault(r.name, set()).add(r.group)
    relabelled, notes = [], {}
    for r in current:
        target = groups.get(r.name, set())
        if len(target) != 1 or r.group in target:
            relabelled.append(r)
            continue
        [g] = target
        diffs = [f"{field} {b} → {c}" for field, b, c in zip(GroupKey._fields, g, r.group, strict=True) if b != c]
        notes[r.name] = "paired by name: " + ", ".join(diffs)
        c = r.context
        context = dataclasses.replace(c, profile=g.profile, batch_size=g.batch_size, maxlen=g.maxlen, device=g.device,
                                      dataset={**c.dataset, "source": g.dataset})
        relabelled.append(dataclasses.replace(r, record=dataclasses.replace(r.record, context=context)))
    return relabelled, notes


def _processes(results: Iterable[Result], key: Any) -> dict[Any, list[Result]]:
    found: dict[Any, list[Result]] = {}
    for r in results:
        found.setdefault(key(r), []).append(r)
    return found


def _range(r: Result) -> tuple[float, float] | None:
    return None if r.stats is None else (r.ms("q1"), r.ms("q3"))


def _spread(results: Sequence[Result]) -> tuple[float, float] | None:
    """Several processes: the lowest and highest process median; one: its Q1-Q3."""
    medians = [r.median_ms for r in results if r.median_ms is not None]
    if len(medians) > 1:
        return min(medians), max(medians)
    return _range(results[0]) if results else None


def _final(r: Result | None) -> float | None:
    return r.accuracy.final_val_accuracy if r is not None and r.accuracy else None


def _latency(bs: Sequence[Result], cs: Sequence[Result], note: str,
             noise: Mapping[str, stats.ProcessNoise]) -> tuple[Change, rule.Line | None]:
    """One benchmark's latency, each side the processes of its newest run; the line for the rule, when it gets one.

    Each side shows the geometric mean of its process medians (the quantity the test compares).
    """
    b, c = bs[-1], cs[-1]
    blocks = interleaved_blocks(bs, cs)
    if blocks is not None:  # process i of each side in block i, as the paired test needs them
        bs, cs = [pair[0] for pair in blocks], [pair[1] for pair in blocks]
    b_ms, c_ms = ([r.median_ms for r in side if r.median_ms is not None] for side in (bs, cs))
    center = lambda values: stats.process_interval(values).estimate if values else None
    change = Change(b.name, b.group, "latency", center(b_ms), center(c_ms), None, "no data",
                    baseline_range=_spread(bs), current_range=_spread(cs), note=note,
                    processes=(len(b_ms), len(c_ms)))
    if not b_ms or not c_ms:
        return change, None
    change.change = (change.current / change.baseline - 1) * 100
    unlike = differences(b.run.fingerprint, c.run.fingerprint, MACHINE_KEYS)
    if b.run.fingerprint and c.run.fingerprint and unlike:
        change.verdict = "not comparable: " + "; ".join(unlike)
        return change, None
    change.noise = noise.get(noise_key(c))
    return change, rule.Line(b_ms, c_ms, change.noise, contended_text(bs, cs), paired=blocks is not None)


def interleaved_blocks(bs: Sequence[Result], cs: Sequence[Result]) -> list[tuple[Result, Result]] | None:
    """The two sides' processes as the blocks of one interleaved run, (baseline, current) per block in
    order; None when they are not.

    ``ab`` runs repeat i of each side back to back, so baseline process i and current process i share
    what the machine was doing then, and the gate pairs them. They are blocks when both sides number
    the same processes (``repeat_index``), each has a median, and every process of block i started
    before any of block i + 1. Two runs made one after the other fail that test and are compared
    unpaired.
    """
    by_index = [{r.run.repeat_index: r for r in side if r.median_ms is not None} for side in (bs, cs)]
    if len(by_index[0]) != len(bs) or len(by_index[1]) != len(cs) or by_index[0].keys() != by_index[1].keys():
        return None
    blocks = [(by_index[0][i], by_index[1][i]) for i in sorted(by_index[0])]
    if len(blocks) < 2 or not all(r.run.started for block in blocks for r in block):
        return None
    started = [[datetime.fromisoformat(r.run.started) for r in block] for block in blocks]
    if any(max(earlier) >= min(later) for earlier, later in itertools.pairwise(started)):
        return None
    return blocks


def contended_text(bs: Sequence[Result], cs: Sequence[Result]) -> str | None:
    """Why a line is not gated because the machine was busy while some of its processes ran, or None.

    A time measured beside another busy process measures both: such a line is neither a regression nor
    a pass (bench/contention.py records it; --strict-cpu fails the run instead).
    """
    flagged = [[r for r in side if r.contention is not None and r.contention.contended] for side in (bs, cs)]
    if not any(flagged):
        return None
    worst = max(r.contention.share for side in flagged for r in side)
    return (f"contended: {len(flagged[0])} of {len(bs)} baseline and {len(flagged[1])} of {len(cs)} current "
            f"processes ran while other processes used up to {worst:.0%} of their CPUs")


def _accuracy(base: Sequence[Result], cur: Sequence[Result], tolerance: float) -> Change:
    """The val_accuracy change of one backend line, over its seeds on each side (mean of the final values)."""
    b, c = (max(side, key=lambda r: r.context.seed) if side else None for side in (base, cur))
    several = len(base) > 1 or len(cur) > 1
    name = seedless((b or c).name) if several else (b or c).name
    group = (b or c).group
    if b is None or c is None:
        verdict, note = ("new", "no baseline") if b is None else ("missing", "not in current results")
        return Change(name, group, "val_accuracy", _mean_final(base), _mean_final(cur), None, verdict, note=note,
                      shared=False)
    note = _note(b, c)
    before, after = _mean_final(base), _mean_final(cur)
    change = Change(name, group, "val_accuracy", before, after, None, "ok", note=note)
    failed = lambda r: r.accuracy is not None and r.accuracy.status != "ok"
    failures = [r for r in cur if failed(r)]
    if failures and not any(failed(r) for r in base):
        change.verdict, change.regression = "REGRESSION (training failed)", True
        change.note = "; ".join(filter(None, [note, failures[0].accuracy.status]))
    elif before is not None and after is None:
        change.verdict, change.regression = "REGRESSION (no accuracy)", True
    elif before is None or after is None:
        change.verdict = "no data"
    else:
        delta = after - before
        change.change = delta * 100
        b_values, c_values = _finals(base), _finals(cur)
        if min(len(b_values), len(c_values)) > 1:
            # Several seeds a side: a change counts only outside the seed-to-seed spread.
            spread, seeds_note = seed_spread(base, cur, tolerance)
            outside = spread.excludes(0.0)
            change.note = "; ".join(filter(None, [note, seeds_note]))
            if -delta > tolerance + _EPS:
                change.verdict, change.regression = (("REGRESSION (accuracy)", True) if outside
                                                     else ("within seed spread", False))
            elif delta > tolerance + _EPS:
                change.verdict = "better" if outside else "within seed spread"
        else:
            change.note = "; ".join(filter(None, [note, "one seed on a side: cannot judge seed spread"]))
            if -delta > tolerance + _EPS:
                change.verdict, change.regression = "REGRESSION (accuracy)", True
            elif delta > tolerance + _EPS:
                change.verdict = "better"
    return change


def seed_spread(base: Sequence[Result], cur: Sequence[Result], tolerance: float) -> tuple[stats.Interval, str]:
    """current - baseline val_accuracy over seeds, with its 95% interval, and the note that says how.

    A seed gives the same initial weights and batch order on both sides, so the seeds both sides ran
    pair: the interval is the paired t interval of the per-seed differences (``stats.paired_difference``),
    far narrower than Welch's when the seeds' accuracies move together. Welch's unpaired interval is
    used only when the sides share fewer than two seeds. The note gives the pairing's correlation,
    the seeds left out, the paired TOST's verdict against ±``tolerance`` and what Welch would have said.
    """
    b, c = _finals_by_seed(base), _finals_by_seed(cur)
    shared = sorted(b.keys() & c.keys())
    welch = stats.welch_difference(list(c.values()), list(b.values()))
    pt = lambda i: f"{i.estimate * 100:+.1f} pp [{i.low * 100:+.1f}, {i.high * 100:+.1f}]"
    if len(shared) < 2:
        return welch, (f"mean of {len(b)} vs {len(c)} seeds, {len(shared) or 'no'} seed(s) in common: "
                       f"difference {pt(welch)} (95%, Welch, unpaired)")
    now, before = [c[s] for s in shared], [b[s] for s in shared]
    paired = stats.paired_difference(now, before)
    test = stats.equivalence(now, before, tolerance)
    r = f", r {test.correlation:.2f}" if test.correlation is not None else ""
    left = sorted((b.keys() | c.keys()) - set(shared))
    parts = [f"paired over {len(shared)} seeds{r}: difference {pt(paired)} (95%)",
             parity.verdict_text(test, f"±{tolerance * 100:g} pt"), f"Welch (unpaired) would give {pt(welch)}"]
    if left:
        parts.append(f"seed(s) {', '.join(map(str, left))} on one side only, left out")
    return paired, "; ".join(parts)


def _finals_by_seed(results: Sequence[Result]) -> dict[int, float]:
    return {r.context.seed: v for r in results if (v := _final(r)) is not None}


def _finals(results: Sequence[Result]) -> list[float]:
    return [v for v in (_final(r) for r in results) if v is not None]


def _mean_final(results: Sequence[Result]) -> float | None:
    values = _finals(results)
    return sum(values) / len(values) if values else None


def _note(b: Result, c: Result) -> str:
    """What differs between the two runs besides the code under test: devices, versions, completeness."""
    bc, cc = b.context, c.context
    notes = [f"{label} {x} → {y}" for label, x, y in (
        ("device", bc.device_name, cc.device_name), ("keras", bc.keras, cc.keras),
        (b.backend, bc.backend_version, cc.backend_version)) if x != y]
    bf, cf = b.run.fingerprint, c.run.fingerprint
    if bf and cf:
        notes += [f"{LABELS[k]} {bf.get(k)} → {cf.get(k)}" for k in ("os", "python", "gpu_driver")
                  if bf.get(k) != cf.get(k)]
    elif bf or cf:
        notes.append(f"no machine fingerprint in the {'baseline' if cf else 'current'} files: machines not checked")
    b_roof, c_roof = (r.step.roofline if r.step else None for r in (b, c))
    if b_roof and c_roof:  # a faster machine is not a faster program: the share of the bound says which moved
        notes.append(f"share of bound {b_roof.share:.2f} ({b_roof.binding}) → {c_roof.share:.2f} ({c_roof.binding})")
    if not c.run.finished:
        notes.append("current run incomplete")
    if not b.run.finished:
        notes.append("baseline run incomplete")
    return "; ".join(notes)


# -------------------------------------------------------------------------------------- rendering

def _cell(ch: Change, side: str) -> str:
    value = getattr(ch, side)
    if ch.metric == "val_accuracy":
        return fmt(value, ".3f")
    spread = getattr(ch, f"{side}_range")
    text = f"{fmt_ms(value)} ms"
    if value is not None and spread and spread[0] != spread[1]:
        text += f" [{fmt_ms(spread[0])}-{fmt_ms(spread[1])}]"
    return MISSING if value is None else text


def _change_text(ch: Change) -> str:
    if ch.change is None:
        return MISSING
    return f"{ch.change:+.1f} pp" if ch.metric == "val_accuracy" else f"{ch.change:+.1f}%"


def _interval_text(ch: Change) -> str:
    if ch.test is None:
        return MISSING
    return f"{ch.test.ratio:.3f} [{ch.test.low:.3f}, {ch.test.high:.3f}]"


def _p_text(p: float | None) -> str:
    return MISSING if p is None else f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def render_comparison(changes: Sequence[Change], style: str = "md", threshold: float = DEFAULT_THRESHOLD,
                      accuracy_drop: float = DEFAULT_ACCURACY_DROP, confidence: float = DEFAULT_CONFIDENCE,
                      min_processes: int = MIN_PROCESSES) -> str:
    """Diff tables, one per group ("md" or "plain"), then the summary (``summary_lines``).

    Latency lines show each side's geometric mean of process medians with their range, the
    processes a side, the ratio current/baseline with its test's interval, the Holm-adjusted p of
    "slower", and the slowdown this line's noise lets the gate flag with at least 80% power.
    """
    headers = ("Benchmark", "Metric", "Baseline", "Current", "Change", "Processes",
               f"Ratio [{confidence:.0%} CI]", "p slower (Holm)", "Detects ≥ (80%)", "Verdict", "Note")
    groups: dict[GroupKey, list[Change]] = {}
    for ch in changes:
        groups.setdefault(ch.group, []).append(ch)
    out = []
    for group, members in groups.items():
        heading = f"## {group.label}" if style == "md" else f"{group.label}\n{'=' * len(group.label)}"
        cells = [(ch.name, ch.metric, _cell(ch, "baseline"), _cell(ch, "current"), _change_text(ch),
                  MISSING if ch.processes is None else f"{ch.processes[0]} vs {ch.processes[1]}", _interval_text(ch),
                  _p_text(ch.p_slower), fmt(ch.detects, ".1%"), ch.verdict, ch.note)
                 for ch in members]
        out += [heading, "", table(headers, cells, style), ""]
    out += summary_lines(summarize(changes), threshold, accuracy_drop, confidence, min_processes)
    return "\n".join(out) + "\n"


def summary_lines(summary: Summary, threshold: float = DEFAULT_THRESHOLD,
                  accuracy_drop: float = DEFAULT_ACCURACY_DROP, confidence: float = DEFAULT_CONFIDENCE,
                  min_processes: int = MIN_PROCESSES) -> list[str]:
    """The verdict in words: regressions, then every line not gated and why, then the rule and its error rate."""
    latency = [ch for ch in summary.gated if ch.metric == "latency"]
    unchecked = sum(1 for ch in latency if sum(ch.processes) < stats.BIMODAL_MIN_PROCESSES)
    paired = sum(1 for ch in latency if ch.test is not None and ch.test.paired)
    test_text = ("Welch t test on log process medians" if not paired else
                 "paired t test on log process medians, each base process with the head process of its interleaved "
                 "block" + ("" if paired == len(latency) else f" ({paired} line(s); Welch's on the others)"))
    rule_text = (f"latency: {test_text}, one-sided, Holm over the {len(latency)} gated "
                 f"latency line(s) (statsmodels multipletests): family-wise false-alarm rate <= {1 - confidence:.0%}; "
                 f"a REGRESSION also needs the slowdown past {threshold * 100:g}%; at least {min_processes} "
                 f"processes a side; accuracy drop > {accuracy_drop:g}")
    if unchecked:
        rule_text += (f". Two modes could not be looked for on {unchecked} line(s) (under "
                      f"{stats.BIMODAL_MIN_PROCESSES} processes in all): there the false-alarm rate holds for "
                      "one-mode noise only (run --threads 1, or more processes)")
    lines = []
    if summary.regressions:
        lines.append(f"{len(summary.regressions)} regression(s): "
                     + ", ".join(f"{ch.name} {ch.metric}" for ch in summary.regressions))
    shared = len(summary.gated) + len(summary.not_gated)
    if not shared:
        lines.append(f"NOT GATED: the two sides share no line ({_count(summary.unshared)}): nothing was compared "
                     f"(exit {EXIT_NOT_GATED}).")
    elif summary.not_gated:
        lines.append(f"NOT GATED: {len(summary.not_gated)} of {shared} shared line(s) could not be gated: "
                     f"{_reasons(summary.not_gated)} (exit {EXIT_NOT_GATED} unless a regression was found).")
    if shared and summary.unshared:
        lines.append(f"On one side only, not compared: {_count(summary.unshared)}.")
    if not summary.regressions and shared and not summary.not_gated:
        lines.append(f"No regressions in {len(summary.gated)} gated line(s).")
    lines.append(f"Rule: {rule_text}.")
    return lines


def _count(changes: Sequence[Change]) -> str:
    counts: dict[str, int] = {}
    for ch in changes:
        counts[ch.verdict] = counts.get(ch.verdict, 0) + 1
    return ", ".join(f"{n} {verdict}" for verdict, n in counts.items())


def _reasons(changes: Sequence[Change]) -> str:
    """Each kind of reason once, with the number of lines it held back: its words where every such line has
    the same ('3 x cannot gate: 1 vs 1 processes, ...'), else its kind ('6 x cannot gate: contended (...)'),
    since each line's row already gives its own figures."""
    found: dict[str, list[str]] = {}
    for ch in changes:
        if ch.reasons:
            for kind, words in ch.reasons:
                found.setdefault(f"{rule.CANNOT_GATE}: {kind}", []).append(f"{rule.CANNOT_GATE}: {words}")
        else:  # not comparable, simulated, no data, ...: the verdict is its own reason
            found.setdefault(ch.verdict.split(":")[0], []).append(ch.verdict)
    return "; ".join(f"{len(words)} x {words[0] if len(set(words)) == 1 else kind + ' (figures in each row)'}"
                     for kind, words in found.items())


# ---------------------------------------------------------------------------------------- exports

def export_name(r: Result) -> str:
    """A stable benchmark name for dashboards: the test id plus its comparison group."""
    g = r.group
    return f"{r.name} ({g.profile}, {g.dataset}, batch {g.batch_size}, maxlen {g.maxlen})"


def _exported(results: Sequence[Result]) -> list[tuple[Result, list[Result]]]:
    """Per benchmark, the newest run's processes (the last one stands for the rest in names and notes)."""
    return [(members[-1], members) for members in _processes(latest(results, lambda r: (r.name, r.group)),
                                                             lambda r: (r.name, r.group)).values()]


def _extra(r: Result, members: Sequence[Result]) -> str:
    rounds = sum(m.stats.rounds for m in members if m.stats)
    parts = [f"median of {rounds} rounds" if len(members) == 1
             else f"median of {len(members)} process medians ({rounds} rounds)"]
    if r.stats is not None and len(members) == 1:
        parts.append(f"Q1: {r.ms('q1'):.3f} ms, Q3: {r.ms('q3'):.3f} ms")
    c = r.context
    parts.append(f"keras {c.keras}, {c.backend} {c.backend_version}, {c.device_name}")
    parts.append(f"machine: {describe(r.run.fingerprint)}")
    return "\n".join(parts)


def _latency_ms(members: Sequence[Result]) -> tuple[float, float, float] | None:
    """Median, low, high in ms: one process's median and Q1-Q3; several: the median of medians and its interval."""
    summary = aggregate(members)
    if summary is None:
        return None
    if summary.processes > 1 and summary.low_ms is not None:
        return summary.median_ms, summary.low_ms, summary.high_ms
    r = next(m for m in members if m.stats is not None)
    return r.median_ms, r.ms("q1"), r.ms("q3")


def _throughput(r: Result, members: Sequence[Result]) -> float | None:
    summary = aggregate(members)
    if r.step is None or summary is None:
        return None
    return r.context.batch_size / summary.median_ms * 1e3


def github_action_benchmark(results: Sequence[Result]) -> dict[str, list[dict]]:
    """github-action-benchmark input for ``tool: customSmallerIsBetter`` and ``customBiggerIsBetter``.

    Each list holds {"name", "unit", "value", "range", "extra"} entries ("range" and "extra" are
    strings): latency in ms (smaller is better); val_accuracy and samples/s (bigger is better).
    "extra" names the machine (its fingerprint), since numbers from other machines do not compare.
    """
    smaller: list[dict] = []
    bigger: list[dict] = []
    for r, members in _exported(results):
        name = export_name(r)
        latency = _latency_ms(members)
        if latency is not None:
            median, low, high = latency
            smaller.append({"name": f"{name} latency", "unit": "ms", "value": round(median, 4),
                            "range": f"± {(high - low) / 2:.4f}",  # half the IQR, or of the 95% interval
                            "extra": _extra(r, members)})
        if _final(r) is not None:
            bigger.append({"name": f"{name} val_accuracy", "unit": "accuracy", "value": round(_final(r), 6),
                           "extra": _extra(r, members)})
        throughput = _throughput(r, members)
        if throughput is not None:
            bigger.append({"name": f"{name} throughput", "unit": "samples/s", "value": round(throughput, 3),
                           "extra": _extra(r, members)})
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

    Latency bounds are Q1 and Q3 (several processes: the 95% interval of the median of their
    medians); "throughput" is samples/s; "accuracy" is final val_accuracy.
    """
    document: dict[str, dict] = {}
    for r, members in _exported(results):
        measures: dict[str, dict] = {}
        latency = _latency_ms(members)
        if latency is not None:
            median, low, high = latency
            measures["latency"] = {"value": median * 1e6, "lower_value": low * 1e6, "upper_value": high * 1e6}
        throughput = _throughput(r, members)
        if throughput is not None:
            measures["throughput"] = {"value": throughput}
        if _final(r) is not None:
            measures["accuracy"] = {"value": _final(r)}
        if measures:
            document[export_name(r)] = measures
    return document


def write_bencher(results: Sequence[Result], path: str | os.PathLike) -> Path:
    path = Path(path)
    write_json_atomic(path, bencher_metric_format(results))
    return path
