"""Statistics: small documented functions over SciPy and NumPy, never hand-written formulas.

Each section answers one question and says which library call does the work. Sections are added
by appending under a heading of their own; readers (report, parity, compare) import from here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

# ----------------------------------------------------------------------------------------------------
# Seeds: means, differences and equivalence across backends (used by bench/parity.py)
# ----------------------------------------------------------------------------------------------------

DEFAULT_CONFIDENCE = 0.95
DEFAULT_ALPHA = 0.05  # each one-sided test of TOST, and the two-sided test of equal means
DEFAULT_POWER = 0.80  # what "enough seeds" means when we say how many would be needed
MAX_SEEDS_NEEDED = 1000  # beyond this the answer is "more than 1000": the question cannot be settled by seeds

EQUIVALENT, DIFFERENT, UNDECIDED = "equivalent", "different", "undecided"


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval; ``low``/``high`` are None when ``n`` cannot give one."""

    estimate: float
    low: float | None
    high: float | None
    n: int
    confidence: float = DEFAULT_CONFIDENCE

    def excludes(self, value: float) -> bool:
        """True when the whole interval lies on one side of ``value``."""
        return self.low is not None and self.high is not None and (self.low > value or self.high < value)


def _sample(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError("need a non-empty list of numbers")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite")
    return x


def mean_interval(values: Sequence[float], confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """The mean and its Student-t interval: ``scipy.stats.t.interval(confidence, n - 1, mean, sem)``.

    One value gives no interval (None bounds); values that are all equal give a zero-width one.
    """
    x = _sample(values)
    mean = float(np.mean(x))
    if len(x) < 2:
        return Interval(mean, None, None, len(x), confidence)
    if np.ptp(x) == 0:  # exact, where the mean of equal floats may round
        return Interval(float(x[0]), float(x[0]), float(x[0]), len(x), confidence)
    low, high = sps.t.interval(confidence, len(x) - 1, loc=mean, scale=float(sps.sem(x)))
    return Interval(mean, float(low), float(high), len(x), confidence)


def welch_difference(a: Sequence[float], b: Sequence[float], confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """mean(a) - mean(b) and Welch's interval (unequal variances, Welch-Satterthwaite degrees of freedom).

    The interval is ``scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)``.
    Fewer than two values on a side give no interval; two constant samples a zero-width one.
    """
    x, y = _sample(a), _sample(b)
    difference = float(np.mean(x) - np.mean(y))
    n = len(x) + len(y)
    if min(len(x), len(y)) < 2:
        return Interval(difference, None, None, n, confidence)
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return Interval(difference, difference, difference, n, confidence)
    ci = sps.ttest_ind(x, y, equal_var=False).confidence_interval(confidence)
    return Interval(difference, float(ci.low), float(ci.high), n, confidence)


def trimmed_mean_mlperf(values: Sequence[float]) -> float | None:
    """MLPerf's score of several runs: drop the fastest and the slowest, average the rest.

    ``scipy.stats.trim_mean`` cuts ``int(proportion * n)`` values at each end; 1.5 / n makes that
    exactly one for every n >= 3 (1 / n could round down to zero cut). None for fewer than 3 runs.
    """
    x = _sample(values)
    if len(x) < 3:
        return None
    return float(sps.trim_mean(x, 1.5 / len(x)))


@dataclass(frozen=True)
class Equivalence:
    """Are two samples' means the same within ±margin? TOST, a two-sided test, and the seeds needed."""

    difference: float  # mean(a) - mean(b), on the scale tested
    margin: float
    verdict: str  # EQUIVALENT, DIFFERENT or UNDECIDED
    p_equal: float | None  # two-sided Welch test of equal means (None: no spread to test with)
    p_tost: float | None  # the larger p of the two one-sided Welch tests
    seeds_needed: int | None  # per side, for DEFAULT_POWER, when UNDECIDED and computable
    reason: str = ""  # why there is no p or no seed count


def equivalence(a: Sequence[float], b: Sequence[float], margin: float, alpha: float = DEFAULT_ALPHA,
                power: float = DEFAULT_POWER) -> Equivalence:
    """Equivalence of mean(a) and mean(b) within ±``margin`` by two one-sided tests (TOST).

    TOST (Schuirmann 1987) rejects "the difference is at most -margin" and "at least +margin" with
    two one-sided Welch t tests: ``scipy.stats.ttest_ind(a + margin, b, equal_var=False,
    alternative="greater")`` and ``ttest_ind(a - margin, b, ..., alternative="less")``; p_tost is the
    larger p. Verdicts: EQUIVALENT when p_tost < alpha; DIFFERENT when TOST fails and the two-sided
    Welch test of equal means rejects (p_equal < alpha); UNDECIDED otherwise, with ``seeds_needed``
    from ``seeds_needed``. Fewer than two values on a side: UNDECIDED with no seed count (no spread
    to plan from). Both samples constant: the difference is exact, so EQUIVALENT when it is inside
    the margin, else DIFFERENT.
    """
    if margin < 0:
        raise ValueError("margin must be >= 0")
    x, y = _sample(a), _sample(b)
    difference = float(np.mean(x) - np.mean(y))
    if min(len(x), len(y)) < 2:
        return Equivalence(difference, margin, UNDECIDED, None, None, None,
                           "at least 2 seeds per backend are needed to see the spread")
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        verdict = EQUIVALENT if abs(difference) < margin else DIFFERENT
        return Equivalence(difference, margin, verdict, None, None, None, "every seed gave the same value")
    p_equal = float(sps.ttest_ind(x, y, equal_var=False).pvalue)
    p_lower = float(sps.ttest_ind(x + margin, y, equal_var=False, alternative="greater").pvalue)
    p_upper = float(sps.ttest_ind(x - margin, y, equal_var=False, alternative="less").pvalue)
    p_tost = max(p_lower, p_upper)
    if p_tost < alpha:
        return Equivalence(difference, margin, EQUIVALENT, p_equal, p_tost, None)
    if p_equal < alpha:
        return Equivalence(difference, margin, DIFFERENT, p_equal, p_tost, None)
    spread = pooled_sd(x, y)
    needed = seeds_needed(difference, spread, margin, alpha, power)
    reason = "" if needed is not None else f"more than {MAX_SEEDS_NEEDED} seeds per backend at this spread"
    return Equivalence(difference, margin, UNDECIDED, p_equal, p_tost, needed, reason)


def pooled_sd(a: Sequence[float], b: Sequence[float]) -> float:
    """sqrt of the mean of the two sample variances (``numpy.var(ddof=1)``): the spread to plan with."""
    return float(math.sqrt((np.var(_sample(a), ddof=1) + np.var(_sample(b), ddof=1)) / 2))


def tost_power(n: int, difference: float, sd: float, margin: float, alpha: float = DEFAULT_ALPHA) -> float:
    """Power of TOST with ``n`` values per side when the true difference is ``difference``.

    Each one-sided statistic follows a noncentral t (``scipy.stats.nct``) with 2n - 2 degrees of
    freedom and noncentrality (difference ± margin) / (sd * sqrt(2 / n)); TOST rejects when both
    reject, whose probability is at least P(lower) + P(upper) - 1. That lower bound is returned
    (the usual approximation; Owen's exact Q-function form is not in SciPy), so the seed counts
    built on it err towards too many, never too few.
    """
    df = 2 * n - 2
    se = sd * math.sqrt(2 / n)
    critical = sps.t.ppf(1 - alpha, df)
    lower = sps.nct.sf(critical, df, (difference + margin) / se)
    upper = sps.nct.cdf(-critical, df, (difference - margin) / se)
    return float(max(0.0, lower + upper - 1))


def difference_power(n: int, difference: float, sd: float, alpha: float = DEFAULT_ALPHA) -> float:
    """Power of the two-sided two-sample t test (n per side) to find ``difference``: ``scipy.stats.nct``."""
    df = 2 * n - 2
    nc = difference / (sd * math.sqrt(2 / n))
    critical = sps.t.ppf(1 - alpha / 2, df)
    return float(sps.nct.sf(critical, df, nc) + sps.nct.cdf(-critical, df, nc))


def seeds_needed(difference: float, sd: float, margin: float, alpha: float = DEFAULT_ALPHA,
                 power: float = DEFAULT_POWER) -> int | None:
    """Seeds per backend that would settle the question, taking the observed difference and spread as true.

    Inside the margin (|difference| < margin) the question is equivalence: the smallest n whose
    ``tost_power`` reaches ``power``. At or beyond the margin, equivalence cannot be shown, and the
    question is whether the difference is real: the smallest n whose ``difference_power`` reaches
    ``power``. None when no n up to MAX_SEEDS_NEEDED does (e.g. a difference of exactly zero and a
    zero margin). The powers come from the noncentral t distribution (``scipy.stats.nct``).
    """
    if sd <= 0 or not math.isfinite(sd):
        return None
    if abs(difference) < margin:
        reached = lambda n: tost_power(n, difference, sd, margin, alpha) >= power
    else:
        reached = lambda n: difference_power(n, difference, sd, alpha) >= power
    # Powers grow with n: double until reached, then bisect.
    high = 2
    while not reached(high):
        if high >= MAX_SEEDS_NEEDED:
            return None
        high = min(2 * high, MAX_SEEDS_NEEDED)
    low = max(2, high // 2)
    if reached(low):
        return low
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if reached(middle) else (middle, high)
    return high


# ----------------------------------------------------------------------------------------------------
# Timings: the median's interval, tail percentiles, query counts, noise between processes
# (used by bench/timing.py, bench/report/, bench/compare.py, bench/calibrate.py)
# ----------------------------------------------------------------------------------------------------

PERCENTILES = (50, 90, 99)
# numpy.percentile's default: linear interpolation between order statistics (Hyndman & Fan type 7).
PERCENTILE_METHOD = "numpy.percentile method='linear' (Hyndman-Fan type 7)"
QUANTILE_CI_METHOD = "order statistics, exact binomial (scipy.stats.quantile_test)"
PROCESS_CI_METHOD = "percentile bootstrap over process medians (scipy.stats.bootstrap)"
RATIO_TEST_METHOD = "hierarchical bootstrap: processes, then rounds within each (numpy, seeded)"
BOOTSTRAP_SEED = 20261129  # every bootstrap here is seeded: the same files give the same verdict
BOOTSTRAP_RESAMPLES = 4000  # p-values resolve to 1/4001, well below 0.01


def percentiles(times: Sequence[float], qs: Sequence[float] = PERCENTILES) -> dict[str, float]:
    """``{"p50": ..., "p90": ..., "p99": ...}`` of ``times`` by ``numpy.percentile`` (PERCENTILE_METHOD)."""
    x = _sample(times)
    values = np.percentile(x, list(qs), method="linear")
    return {f"p{q:g}": float(v) for q, v in zip(qs, values, strict=True)}


def quantile_interval(times: Sequence[float], p: float = 0.5,
                      confidence: float = DEFAULT_CONFIDENCE) -> tuple[float | None, float | None]:
    """Distribution-free interval of the ``p``-quantile from order statistics (QUANTILE_CI_METHOD).

    ``scipy.stats.quantile_test(times, p=p).confidence_interval(confidence)``: the bounds are two of
    the observed times, chosen by the binomial distribution of the count below the quantile, so no
    shape of the timing distribution is assumed. A bound is None where there are too few times for
    the confidence (e.g. fewer than 6 for the median at 95%, fewer than 368 for the 99th percentile).
    """
    x = _sample(times)
    ci = sps.quantile_test(x, q=float(np.median(x)), p=p).confidence_interval(confidence)
    bound = lambda v: float(v) if np.isfinite(v) else None
    return bound(ci.low), bound(ci.high)


def median_half_width(times: Sequence[float], confidence: float = DEFAULT_CONFIDENCE) -> float | None:
    """Half the width of the median's interval (``quantile_interval``) relative to the median, or None."""
    low, high = quantile_interval(times, 0.5, confidence)
    median = float(np.median(_sample(times)))
    if low is None or high is None or median <= 0:
        return None
    return (high - low) / 2 / median


@dataclass(frozen=True)
class QuerySizing:
    """How many batch-1 queries make the ``percentile``'s interval fit inside ``percentile ± margin``."""

    percentile: float  # e.g. 0.99
    margin: float  # in quantile levels: 0.005 means the interval lies within p98.5 .. p99.5
    confidence: float
    queries: int
    method: str = "scipy.stats.binom ranks, as scipy.stats.quantile_test's interval takes them"


def queries_for_percentile(percentile: float = 0.99, margin: float = 0.005,
                           confidence: float = DEFAULT_CONFIDENCE, limit: int = 2_000_000) -> QuerySizing:
    """The fewest queries for which the order-statistic interval of the ``percentile`` is within ± ``margin``.

    MLPerf's inference rules size their query counts the same way (the percentile, a margin and a
    confidence); here the count is exact, not its normal approximation: for n queries
    ``scipy.stats.quantile_test`` takes the sorted times at 0-based ranks ``binom(n, p).ppf(a) - 1``
    and ``binom(n, p).isf(a)`` with ``a = (1 - confidence) / 2``; their levels (rank + 1) / n must both
    exist and lie within ``percentile ± margin``. Raises ValueError when no n up to ``limit`` does.
    """
    if not 0 < percentile < 1 or not 0 < margin < 1 or not 0 < confidence < 1:
        raise ValueError("percentile, margin and confidence must be between 0 and 1")
    a = (1 - confidence) / 2
    start = 1
    while start <= limit:
        n = np.arange(start, min(2 * start, limit) + 1)
        low_rank = sps.binom.ppf(a, n, percentile) - 1  # 0-based, as quantile_test takes them
        high_rank = sps.binom.isf(a, n, percentile)
        fits = ((low_rank >= 0) & (high_rank < n)
                & (percentile - (low_rank + 1) / n <= margin + 1e-12)
                & ((high_rank + 1) / n - percentile <= margin + 1e-12))
        if fits.any():
            return QuerySizing(percentile, margin, confidence, int(n[np.argmax(fits)]))
        start = 2 * start + 1
    raise ValueError(f"no query count up to {limit} puts the p{percentile * 100:g} interval within ±{margin:g}")


def process_interval(medians: Sequence[float], confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """The median of per-process medians and its interval by bootstrap over processes (PROCESS_CI_METHOD).

    ``scipy.stats.bootstrap((medians,), numpy.median, method="percentile")``, seeded; the percentile
    method because BCa needs more than a handful of values. One process gives no interval; processes
    with identical medians a zero-width one.
    """
    x = _sample(medians)
    estimate = float(np.median(x))
    if len(x) < 2:
        return Interval(estimate, None, None, len(x), confidence)
    if np.ptp(x) == 0:
        return Interval(estimate, estimate, estimate, len(x), confidence)
    ci = sps.bootstrap((x,), np.median, confidence_level=confidence, method="percentile",
                       n_resamples=BOOTSTRAP_RESAMPLES, rng=np.random.default_rng(BOOTSTRAP_SEED)).confidence_interval
    return Interval(estimate, float(ci.low), float(ci.high), len(x), confidence)


def process_spread(medians: Sequence[float]) -> float:
    """The largest ratio between two process medians, minus 1: how far apart the same code landed."""
    x = _sample(medians)
    return float(np.max(x) / np.min(x) - 1) if np.min(x) > 0 else math.inf


@dataclass(frozen=True)
class RatioTest:
    """current / baseline of the median of process medians, with its interval and a two-sided p-value."""

    ratio: float
    low: float
    high: float
    p_value: float
    confidence: float
    processes: tuple[int, int]  # baseline, current
    resamples: int
    method: str = RATIO_TEST_METHOD

    def smallest_detectable(self, threshold: float = 0.0) -> float:
        """The smallest slowdown (0.05 = 5%) that a comparison with this noise would flag.

        Were current the baseline slowed by a factor f, with the noise seen here, the resampled
        ratios would centre on f with the same relative spread, so the interval's lower bound would
        be f * low / ratio: it passes 1 once f > ratio / low, and the change passes the threshold
        once f > 1 + threshold. On an A/A pair this is the gate's resolution on this machine.
        """
        return max(self.ratio / self.low, 1 + threshold) - 1


def hierarchical_bootstrap(baseline: Sequence[Sequence[float]], current: Sequence[Sequence[float]],
                           confidence: float = DEFAULT_CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES,
                           seed: int = BOOTSTRAP_SEED) -> RatioTest:
    """Is current slower or faster than baseline, counting the noise between processes? (RATIO_TEST_METHOD)

    Each side is a list of processes, each a list of its round times. One resample draws the side's
    processes with replacement, then each drawn process's rounds with replacement, and takes the
    median of the process medians; the ratio current / baseline is collected over ``resamples``
    draws (``numpy.random.default_rng(seed)``). The interval is the ratios' percentiles
    (``numpy.quantile``); the two-sided p-value is twice the smaller share of ratios on either side
    of 1, with the usual +1 so that it is never 0. Resampling processes is what makes drift between
    processes count: the rounds of one process alone would call any such drift significant.
    """
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    base = [_sample(p) for p in baseline]
    cur = [_sample(p) for p in current]
    if not base or not cur:
        raise ValueError("each side needs at least one process")
    rng = np.random.default_rng(seed)
    ratios = _side_medians(cur, resamples, rng) / _side_medians(base, resamples, rng)
    observed = float(np.median([np.median(p) for p in cur]) / np.median([np.median(p) for p in base]))
    alpha = 1 - confidence
    low, high = np.quantile(ratios, [alpha / 2, 1 - alpha / 2])
    tail = min(np.count_nonzero(ratios <= 1), np.count_nonzero(ratios >= 1))
    p_value = float(min(1.0, 2 * (tail + 1) / (resamples + 1)))
    return RatioTest(observed, float(low), float(high), p_value, confidence, (len(base), len(cur)), resamples)


def _side_medians(processes: list[np.ndarray], resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``resamples`` draws of one side's median of process medians, resampling processes then rounds."""
    count = len(processes)
    picks = rng.integers(0, count, size=(resamples, count))
    medians = np.empty((resamples, count))
    for index, rounds in enumerate(processes):
        where = np.nonzero(picks == index)
        draws = len(where[0])
        if draws == 0:
            continue
        # Chunks bound the memory of a long serving run (thousands of rounds per process).
        chunk = max(1, 4_000_000 // len(rounds))
        values = np.empty(draws)
        for start in range(0, draws, chunk):
            size = min(chunk, draws - start)
            values[start : start + size] = np.median(rounds[rng.integers(0, len(rounds), size=(size, len(rounds)))],
                                                     axis=1)
        medians[where] = values
    return np.median(medians, axis=1)


def process_variation(medians: Sequence[float]) -> float | None:
    """Coefficient of variation of process medians (``scipy.stats.variation``, ddof=1); None for one process."""
    x = _sample(medians)
    return float(sps.variation(x, ddof=1)) if len(x) > 1 else None
