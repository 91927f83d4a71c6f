"""The latency gate's rule: which lines of a comparison are slower, counting the noise between processes.

One line is one benchmark, each side the process medians of its newest run. The rule, shared by
``compare`` (real result files) and ``bench.gatesim`` (simulated ones), so that the error rates
simulated are the rule's own:

1. Lines with fewer than ``min_processes`` a side, whose process medians fall into two modes
   (``stats.process_modes``: e.g. 330 and 400 ms), or some of whose processes ran beside other busy
   processes (``Line.contended``) are not gated; the verdict says why. Pooling two modes would make the
   test's variance describe neither; a contended time measures the other work too.
2. Every other line gets a t test on log process medians, one sided each way: paired
   (``stats.paired_log_ratio_test``) where each baseline process ran in one block with a current one
   (``Line.paired``: ``ab``'s interleaved repeats), so that the machine's drift between blocks cancels;
   else Welch's (``stats.log_ratio_test``), with this machine's calibrated variance when there is one.
3. Holm's step-down (``stats.holm``) over the run's gated lines, for "slower" and for "faster"
   separately, so that an A/A run of about a dozen lines false-alarms at most ``alpha`` in all.
4. REGRESSION: Holm-adjusted p (slower) below ``alpha`` and the ratio past ``1 + threshold``.
   "faster": the mirror. "within noise": past the threshold, not significant. "ok": neither.

Each gated line also gets the smallest slowdown it would flag with at least 80% power (``detects``), at the
level Holm gives one slowed line among the run's m gated lines (alpha / m).
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench import stats

DEFAULT_ALPHA = 0.05  # family-wise false-alarm rate of one run's gated lines (per direction)
DEFAULT_THRESHOLD = 0.03  # the CI's, chosen by power (bench.gatesim.choose_ci_settings)
MIN_PROCESSES = 3  # a side; Welch's test holds its level from 2, but 3 is the fewest that shows a stray process
DETECT_POWER = 0.80

REGRESSION, FASTER, WITHIN_NOISE, OK = "REGRESSION (slower)", "faster", "within noise", "ok"
CANNOT_GATE = "cannot gate"  # every verdict of a line that was not gated starts so
# What a refusal is for: the run's summary counts lines by these, each line's verdict gives the figures.
TOO_FEW, TWO_MODES, CONTENDED = "too few processes", "two modes", "contended"


@dataclass(frozen=True)
class Line:
    """One benchmark's process medians on each side (any one unit), and this machine's noise for it."""

    baseline: Sequence[float]
    current: Sequence[float]
    noise: stats.ProcessNoise | None = None
    contended: str | None = None  # why some of its processes ran beside other busy ones (bench.contention)
    paired: bool = False  # baseline[i] and current[i] ran back to back in block i of one interleaved run


@dataclass(frozen=True)
class Judgement:
    verdict: str
    regression: bool = False
    gated: bool = False
    test: stats.RatioTest | None = None
    p_slower: float | None = None  # Holm-adjusted over the run's gated lines
    p_faster: float | None = None
    detects: float | None = None  # the slowdown flagged with DETECT_POWER at this line's noise
    modes: stats.Modes | None = None
    reasons: tuple[tuple[str, str], ...] = ()  # why it was not gated: (TOO_FEW, TWO_MODES or CONTENDED, words)


@dataclass(frozen=True)
class Decisions:
    """``decide``'s answer, arrays of the shape of its input."""

    regression: np.ndarray
    faster: np.ndarray
    within_noise: np.ndarray
    p_slower: np.ndarray  # Holm-adjusted; NaN where not gated
    p_faster: np.ndarray


def decide(ratio: np.ndarray, p_slower: np.ndarray, p_faster: np.ndarray, threshold: float,
           alpha: float = DEFAULT_ALPHA, gated: np.ndarray | None = None) -> Decisions:
    """Steps 3 and 4 of the rule over arrays whose last axis is the lines of one run (leading axes: runs)."""
    ratio, slower_p, faster_p = (np.asarray(a, dtype=float) for a in (ratio, p_slower, p_faster))
    gated = np.ones(ratio.shape, bool) if gated is None else np.asarray(gated, bool)
    adjusted_slower = np.full(ratio.shape, np.nan)
    adjusted_faster = np.full(ratio.shape, np.nan)
    # statsmodels' Holm runs gc.collect() on every call (0.1 s in a process this size): objects that exist
    # before the loop are frozen out of it, which makes thousands of simulated runs take a second.
    gc.freeze()
    try:
        for run in np.ndindex(ratio.shape[:-1]):
            lines = gated[run]
            adjusted_slower[run][lines] = stats.holm(slower_p[run][lines], alpha)
            adjusted_faster[run][lines] = stats.holm(faster_p[run][lines], alpha)
    finally:
        gc.unfreeze()
    with np.errstate(invalid="ignore"):
        past_slower, past_faster = ratio > 1 + threshold, ratio < 1 - threshold
        regression = gated & past_slower & (adjusted_slower < alpha)
        faster = gated & past_faster & (adjusted_faster < alpha)
    within_noise = gated & (past_slower | past_faster) & ~regression & ~faster
    return Decisions(regression, faster, within_noise, adjusted_slower, adjusted_faster)


def refused(baseline: np.ndarray, current: np.ndarray, min_processes: int = MIN_PROCESSES) -> np.ndarray:
    """Step 1 of the rule over stacks of lines (last axis: processes): True where a line is not gated."""
    few = min(np.shape(baseline)[-1], np.shape(current)[-1]) < max(2, min_processes)
    with np.errstate(invalid="ignore"):
        bimodal = stats.bimodality_p([baseline, current]) < stats.BIMODAL_ALPHA  # NaN: not testable, not bimodal
    return np.asarray(few | bimodal)


def refusal(baseline: Sequence[float], current: Sequence[float], min_processes: int = MIN_PROCESSES,
            contended: str | None = None) -> tuple[str | None, stats.Modes | None, tuple[tuple[str, str], ...]]:
    """Step 1 for one line: why it is not gated (None: it is), its two modes where it has them, and each
    reason as (its kind: TOO_FEW, TWO_MODES or CONTENDED; its words).

    ``contended`` (why some of its processes ran beside other busy processes) refuses the line too: such
    a time measures the other work as well. Every reason that applies is named.
    """
    modes = stats.process_modes([baseline, current])
    reasons: dict[str, str] = {}
    if refused(np.asarray(baseline, float), np.asarray(current, float), min_processes):
        counts, needed = (len(baseline), len(current)), max(2, min_processes)
        if min(counts) < needed:
            reasons[TOO_FEW] = f"{counts[0]} vs {counts[1]} processes, needs {needed} a side (--repeat {needed})"
        else:
            reasons[TWO_MODES] = ("the process medians fall into two modes (see note); gate single-threaded "
                                  "(--threads 1) or find the cause")
    if contended:
        reasons[CONTENDED] = contended
    verdict = f"{CANNOT_GATE}: {'; '.join(reasons.values())}" if reasons else None
    return verdict, modes, tuple(reasons.items())


def judge(lines: Sequence[Line], threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
          min_processes: int = MIN_PROCESSES, confidence: float | None = None) -> list[Judgement]:
    """The rule over one run's lines; one Judgement per line, in order.

    ``confidence`` is the level of each line's printed interval (default ``1 - alpha``).
    """
    if threshold < 0 or not 0 < alpha < 1:
        raise ValueError("threshold must be >= 0 and alpha between 0 and 1")
    min_processes = max(2, min_processes)
    confidence = 1 - alpha if confidence is None else confidence
    found: list[Judgement | None] = []
    tests: list[stats.RatioTest] = []
    modes_of: list[stats.Modes | None] = []
    for line in lines:
        reason, modes, reasons = refusal(line.baseline, line.current, min_processes, line.contended)
        modes_of.append(modes)
        if reason:
            found.append(Judgement(reason, modes=modes, reasons=reasons))
        else:
            found.append(None)
            tests.append(stats.paired_log_ratio_test(line.baseline, line.current, confidence) if line.paired
                         else stats.log_ratio_test(line.baseline, line.current, confidence, line.noise))
    if not tests:
        return [j for j in found if j is not None]
    decisions = decide(np.array([t.ratio for t in tests]), np.array([t.p_slower for t in tests]),
                       np.array([t.p_faster for t in tests]), threshold, alpha)
    per_line = alpha / len(tests)  # Holm's level for one slowed line among the gated ones
    judged = iter(range(len(tests)))
    out = []
    for judgement, modes in zip(found, modes_of, strict=True):
        if judgement is not None:
            out.append(judgement)
            continue
        i = next(judged)
        verdict = (REGRESSION if decisions.regression[i] else FASTER if decisions.faster[i]
                   else WITHIN_NOISE if decisions.within_noise[i] else OK)
        out.append(Judgement(verdict, bool(decisions.regression[i]), True, tests[i],
                             float(decisions.p_slower[i]), float(decisions.p_faster[i]),
                             stats.detectable_slowdown(tests[i], per_line, threshold, DETECT_POWER), modes))
    return out
