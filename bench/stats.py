"""Statistics: small documented functions over SciPy, statsmodels, arch and diptest; hand-written formulas say why.

Each section answers one question and says which library call does the work; where no kept library
has the method (the group-sequential boundary), its comment says so and cites the method. Sections
are added by appending under a heading of their own; readers (report, parity, compare) import from here.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


class _Lazy:
    """A module imported at its first use. SciPy's stats, statsmodels, arch and diptest take ~3 s to import,
    and most commands, and every benchmark process, never call a function that needs them."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


sps = _Lazy("scipy.stats")
diptest = _Lazy("diptest")
_optimize = _Lazy("scipy.optimize")
_kernel = _Lazy("arch.covariance.kernel")
_multitest = _Lazy("statsmodels.stats.multitest")
_power = _Lazy("statsmodels.stats.power")
_tsa = _Lazy("statsmodels.tsa.stattools")

# ----------------------------------------------------------------------------------------------------
# Seeds: means, differences and equivalence across backends (used by bench/parity.py, bench/compare.py)
# ----------------------------------------------------------------------------------------------------

DEFAULT_CONFIDENCE = 0.95
DEFAULT_ALPHA = 0.05  # each one-sided test against a margin, and the two-sided test of no difference
DEFAULT_POWER = 0.80  # what "enough seeds" means when a plan says how many
MAX_SEEDS_NEEDED = 1000  # beyond this the answer is "more than 1000": the question cannot be settled by seeds

# The four verdicts on a difference and a margin m (``Equivalence.verdict``).
EQUIVALENT = "equivalent"  # the interval lies inside ±m and holds 0
DIFFERENT_WITHIN = "different, within"  # inside ±m, and the test of no difference rejects
DIFFERENT_BEYOND = "different, beyond"  # the interval lies beyond +m or beyond -m
UNSETTLED = "not settled"
SETTLED = (EQUIVALENT, DIFFERENT_WITHIN, DIFFERENT_BEYOND)


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


def _constant(x: np.ndarray) -> bool:
    """No spread beyond float rounding (0.9 - 0.8 and 0.8 - 0.7 differ in the last bit): the values are exact."""
    return bool(np.ptp(x) <= 1e-12 * max(1.0, float(np.max(np.abs(x)))))


def _pairs(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = _sample(a), _sample(b)
    if len(x) != len(y):
        raise ValueError(f"paired samples need one value each per seed: {len(x)} against {len(y)}")
    return x, y


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
    For samples that share no seed: where seeds pair, ``paired_difference`` is the interval.
    Fewer than two values on a side give no interval; two constant samples a zero-width one.
    """
    x, y = _sample(a), _sample(b)
    difference = float(np.mean(x) - np.mean(y))
    n = len(x) + len(y)
    if min(len(x), len(y)) < 2:
        return Interval(difference, None, None, n, confidence)
    if _constant(x) and _constant(y):
        return Interval(difference, difference, difference, n, confidence)
    ci = sps.ttest_ind(x, y, equal_var=False).confidence_interval(confidence)
    return Interval(difference, float(ci.low), float(ci.high), n, confidence)


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """mean(a - b) over pairs (``a[i]`` and ``b[i]`` share seed i) and its paired t interval.

    ``scipy.stats.ttest_rel(a, b).confidence_interval(confidence)``: the Student-t interval of the mean
    of the per-seed differences (n - 1 degrees of freedom). Where the two sides move together from
    seed to seed, the differences vary less than either side, and the interval is that much narrower
    than Welch's. Fewer than two pairs give no interval; equal differences a zero-width one.
    """
    x, y = _pairs(a, b)
    d = x - y
    difference = float(np.mean(d))
    if len(d) < 2:
        return Interval(difference, None, None, len(d), confidence)
    if _constant(d):
        return Interval(difference, difference, difference, len(d), confidence)
    ci = sps.ttest_rel(x, y).confidence_interval(confidence)
    return Interval(difference, float(ci.low), float(ci.high), len(d), confidence)


def correlation(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Pearson's r of the pairs (``scipy.stats.pearsonr``); None for fewer than 3 pairs or a constant side."""
    x, y = _pairs(a, b)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(sps.pearsonr(x, y).statistic)


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
class MlperfTime:
    """MLPerf's time-to-target score over seeds, or why there is none."""

    score: float | None
    runs: int
    unreached: int  # runs that never reached the target
    reason: str = ""  # why ``score`` is None

    @property
    def invalid(self) -> bool:
        return self.unreached > 1


def mlperf_time(times: Sequence[float | None]) -> MlperfTime:
    """MLPerf Training's rule for the time to target of several runs (None: a run that never reached it).

    Drop the fastest and the slowest run and average the rest (``trimmed_mean_mlperf``). A run that
    never reached the target counts as the slowest, so it is the one dropped; more than one such run
    makes the result invalid (MLPerf Training rules, "Benchmark results": one non-converging run is
    allowed). Dropping unreached runs silently instead would score only the lucky seeds.
    """
    reached = [t for t in times if t is not None]
    runs, unreached = len(times), len(times) - len(reached)
    if unreached > 1:
        return MlperfTime(None, runs, unreached, f"invalid: {unreached} of {runs} seeds never reached the target "
                                                 "(MLPerf allows one)")
    if runs < 3:
        return MlperfTime(None, runs, unreached, "needs 3 seeds or more")
    if unreached == 1:
        # The unreached run is the slowest and is dropped; drop the fastest reached one and average the rest.
        return MlperfTime(float(np.mean(np.sort(_sample(reached))[1:])), runs, unreached)
    return MlperfTime(trimmed_mean_mlperf(reached), runs, unreached)


# ---------------------------------------------------------------------------------- verdicts on a margin

@dataclass(frozen=True)
class Levels:
    """The nominal levels one analysis holds its tests to, and the overall level they keep.

    A fixed design (one look at all the seeds) holds each test to ``alpha``. A group-sequential design
    (``sequential_levels``) holds the tests at each look to a smaller nominal level, so that looking
    after every batch of seeds still keeps each claim's overall error at ``alpha``.
    """

    margin: float = DEFAULT_ALPHA  # each one-sided test against a margin: TOST's two, and the test beyond it
    zero: float = DEFAULT_ALPHA  # the two-sided test of no difference
    alpha: float = DEFAULT_ALPHA  # the overall level each claim keeps
    look: str = ""  # e.g. "look 3 of 6, O'Brien-Fleming spending"; "" for a fixed design

    @property
    def sequential(self) -> bool:
        return bool(self.look)

    @property
    def margin_confidence(self) -> float:
        """The interval the margin verdicts read: 1 - 2 * the one-sided level (TOST's 90% at alpha 0.05)."""
        return 1 - 2 * self.margin

    @property
    def zero_confidence(self) -> float:
        return 1 - self.zero


FIXED = Levels()


@dataclass(frozen=True)
class Equivalence:
    """Is mean(a) - mean(b) inside ±margin, beyond it, or not known yet? The verdict with its intervals."""

    difference: float  # on the scale tested
    margin: float
    verdict: str  # EQUIVALENT, DIFFERENT_WITHIN, DIFFERENT_BEYOND or UNSETTLED
    interval: Interval  # at ``levels.margin_confidence``: the margin verdicts read it
    zero_interval: Interval  # at ``levels.zero_confidence``: excludes 0 when the test of no difference rejects
    p_tost: float | None  # the larger p of TOST's two one-sided tests
    p_equal: float | None  # the two-sided test of no difference
    paired: bool  # per-seed differences (True), or Welch over samples that share no seed (False)
    n: int  # pairs (paired) or values on the smaller side (Welch)
    sd: float | None  # SD of the per-seed differences (paired), or the larger side's SD (Welch)
    correlation: float | None  # Pearson's r of the pairs
    unpaired_seeds: float | None  # paired: seeds per side an unpaired design would need for the same precision
    levels: Levels = FIXED
    reason: str = ""  # why it cannot be settled yet, where that is not the spread

    @property
    def settled(self) -> bool:
        return self.verdict in SETTLED


@dataclass(frozen=True)
class Judgement:
    """The verdicts of many comparisons at once (``judge``): one entry per row."""

    verdict: np.ndarray
    p_tost: np.ndarray
    p_equal: np.ndarray
    low: np.ndarray  # the ``levels.margin_confidence`` interval
    high: np.ndarray
    zero_low: np.ndarray  # the ``levels.zero_confidence`` interval
    zero_high: np.ndarray


def _test(x: np.ndarray, y: np.ndarray, paired: bool, alternative: str = "two-sided") -> object:
    if paired:
        return sps.ttest_rel(x, y, axis=-1, alternative=alternative)
    return sps.ttest_ind(x, y, axis=-1, equal_var=False, alternative=alternative)


def _bounds(test: object, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The two-sided interval with ``level`` in each tail; unbounded where a look may spend nothing."""
    if level <= 0:
        shape = np.shape(test.statistic)
        return np.full(shape, -np.inf), np.full(shape, np.inf)
    ci = test.confidence_interval(1 - 2 * level)
    return np.asarray(ci.low), np.asarray(ci.high)


def judge(a: np.ndarray, b: np.ndarray, margin: float, levels: Levels = FIXED, paired: bool = True) -> Judgement:
    """Where mean(a) - mean(b) lies against ±``margin``, for each row of ``a`` and ``b`` (shape (..., seeds)).

    TOST's two one-sided tests are SciPy's: ``ttest_rel(a + margin, b, alternative="greater")`` and
    ``ttest_rel(a - margin, b, alternative="less")`` (Welch's ``ttest_ind(equal_var=False)`` unpaired);
    p_tost is the larger p, the same number ``statsmodels.stats.weightstats.ttost_paired`` (``ttost_ind``)
    gives, computed with SciPy because it runs over many rows at once. The test of no difference and
    both intervals come from the two-sided test's ``confidence_interval``. Verdicts, each at ``levels``:

    * EQUIVALENT: TOST rejects "at most -margin" and "at least +margin" (its ``levels.margin_confidence``
      interval lies inside ±margin), and the test of no difference does not reject;
    * DIFFERENT_WITHIN: TOST rejects and so does the test of no difference: real, but inside the margin;
    * DIFFERENT_BEYOND: the ``margin_confidence`` interval lies beyond +margin or beyond -margin (the
      one-sided test that the difference exceeds the margin rejects);
    * UNSETTLED: none of these.

    Every claim's error is at most ``levels.alpha``: "equivalent" when the difference is at the margin,
    "beyond" when it is inside it, "different" when it is 0. Rows without spread give nan p-values and
    stay UNSETTLED here (``equivalence`` settles them exactly).
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    two_sided = _test(x, y, paired)
    lower = _test(x + margin, y, paired, "greater").pvalue
    upper = _test(x - margin, y, paired, "less").pvalue
    p_tost, p_equal = np.maximum(lower, upper), np.asarray(two_sided.pvalue)
    low, high = _bounds(two_sided, levels.margin)
    zero_low, zero_high = _bounds(two_sided, levels.zero / 2)
    tost = p_tost < levels.margin
    beyond = (low > margin) | (high < -margin)
    verdict = np.where(tost, np.where(p_equal < levels.zero, DIFFERENT_WITHIN, EQUIVALENT),
                       np.where(beyond, DIFFERENT_BEYOND, UNSETTLED))
    return Judgement(verdict, p_tost, p_equal, low, high, zero_low, zero_high)


def equivalence(a: Sequence[float], b: Sequence[float], margin: float, levels: Levels = FIXED,
                paired: bool = True) -> Equivalence:
    """Where mean(a) - mean(b) lies against ±``margin`` (``judge``), with its intervals, spread and pairing.

    Paired: ``a[i]`` and ``b[i]`` come from the same seed, and the tests are on the per-seed
    differences. Unpaired (samples that share no seed): Welch. Fewer than two pairs (two values a
    side) cannot be settled; differences without spread are exact and settle at once.
    """
    if margin < 0:
        raise ValueError("margin must be >= 0")
    x, y = _pairs(a, b) if paired else (_sample(a), _sample(b))
    difference = float(np.mean(x - y) if paired else np.mean(x) - np.mean(y))
    n = len(x) if paired else min(len(x), len(y))
    size = len(x) if paired else len(x) + len(y)
    interval = lambda low, high, level: Interval(difference, low, high, size, 1 - 2 * level if level > 0 else 1.0)
    r = correlation(x, y) if paired else None
    common = dict(difference=difference, margin=margin, paired=paired, n=n, correlation=r, levels=levels)
    exact = _constant(x - y) if paired else _constant(x) and _constant(y)
    if n < 2 or exact:
        if n < 2:
            verdict, reason = UNSETTLED, f"needs 2 seeds {'in common' if paired else 'per backend'} to see the spread"
            bounds = (None, None)
        else:
            verdict = (DIFFERENT_BEYOND if abs(difference) > margin else UNSETTLED if abs(difference) == margin
                       else EQUIVALENT if difference == 0 else DIFFERENT_WITHIN)
            reason, bounds = "every seed gave the same difference", (difference, difference)
        return Equivalence(verdict=verdict, interval=interval(*bounds, levels.margin),
                           zero_interval=interval(*bounds, levels.zero / 2), p_tost=None, p_equal=None,
                           sd=None if n < 2 else 0.0, unpaired_seeds=None, reason=reason, **common)
    j = judge(x, y, margin, levels, paired)
    if paired:
        sd = float(np.std(x - y, ddof=1))
        # Precision of the mean difference: var(d) / n paired, (var(a) + var(b)) / n unpaired.
        unpaired = float(n * (np.var(x, ddof=1) + np.var(y, ddof=1)) / sd**2)
    else:
        sd, unpaired = float(max(np.std(x, ddof=1), np.std(y, ddof=1))), None
    return Equivalence(verdict=str(j.verdict), interval=interval(float(j.low), float(j.high), levels.margin),
                       zero_interval=interval(float(j.zero_low), float(j.zero_high), levels.zero / 2),
                       p_tost=float(j.p_tost), p_equal=float(j.p_equal), sd=sd, unpaired_seeds=unpaired, **common)


# ------------------------------------------------------------------------------------- planning seeds

def tost_power(n: int, sd: float, margin: float, difference: float = 0.0, alpha: float = DEFAULT_ALPHA,
               paired: bool = True) -> float:
    """Power of TOST at ``alpha`` with ``n`` seeds when the true difference is ``difference``.

    Paired: n pairs whose differences have SD ``sd`` (``statsmodels.stats.power.TTestPower``, n - 1
    degrees of freedom). Unpaired: n seeds a side, each with SD ``sd`` (``TTestIndPower``, 2n - 2).
    Each one-sided test's power is statsmodels', at effect sizes (difference + margin) / sd and
    (difference - margin) / sd. TOST rejects when both do, with probability at least P(lower) +
    P(upper) - 1, which is returned: the usual bound, as the exact value needs Owen's Q function,
    which neither SciPy nor statsmodels has; seed counts built on it err towards too many.
    """
    if sd <= 0 or n < 2:
        raise ValueError("need sd > 0 and n >= 2")
    power = _power.TTestPower().power if paired else _power.TTestIndPower().power  # their second argument: n (per side)
    lower = power((difference + margin) / sd, n, alpha, alternative="larger")
    upper = power((difference - margin) / sd, n, alpha, alternative="smaller")
    return float(max(0.0, lower + upper - 1))


def seeds_for_equivalence(sd: float, margin: float, difference: float = 0.0, alpha: float = DEFAULT_ALPHA,
                          power: float = DEFAULT_POWER, paired: bool = True) -> int | None:
    """The fewest seeds whose TOST reaches ``power`` when the truth is ``difference`` and the SD is ``sd``.

    A plan, never a reading of the data: ``sd`` is a stated upper bound (of the per-seed differences'
    SD when paired) and ``difference`` the true difference planned for, usually 0. Planning from the
    observed difference and spread ("observed power") answers anything from a quarter to twenty times
    the truth with five seeds (Hoenig & Heisey 2001). None when no count up to MAX_SEEDS_NEEDED does.
    """
    if sd <= 0 or not math.isfinite(sd) or abs(difference) >= margin:
        return None
    reached = lambda n: tost_power(n, sd, margin, difference, alpha, paired) >= power
    # The power grows with n: double until reached, then bisect.
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


def sd_upper_bound(sd: float, n: int, confidence: float = DEFAULT_CONFIDENCE) -> float:
    """One-sided upper confidence bound of a normal SD from a sample SD of ``n`` values (``scipy.stats.chi2``).

    sqrt((n - 1) s^2 / chi2.ppf(1 - confidence, n - 1)): a bound to plan with when no better one is stated.
    """
    if n < 2:
        raise ValueError("needs 2 values or more")
    return float(sd * math.sqrt((n - 1) / sps.chi2.ppf(1 - confidence, n - 1)))


# ----------------------------------------------------------------------------- group-sequential designs

SPENDING = ("obrien-fleming", "pocock")
SEQUENTIAL_PATHS = 200_000  # simulated null paths per boundary: about ±0.0005 on a 5% level
SEQUENTIAL_SEED = 20261130


def alpha_spent(fraction: float, alpha: float = DEFAULT_ALPHA, spending: str = "obrien-fleming") -> float:
    """The error a group-sequential design may have spent once ``fraction`` of its planned seeds are in.

    Lan & DeMets (1983), "Discrete sequential boundaries for clinical trials", Biometrika 70:659-663.
    O'Brien-Fleming-like: 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t)), which spends almost nothing at the first
    looks and keeps the last one close to the fixed design's; Pocock-like: alpha ln(1 + (e - 1) t),
    which spends evenly. Written out because no kept library has spending functions (``scipy.stats.norm``
    does the arithmetic).
    """
    t = min(max(fraction, 0.0), 1.0)
    if t == 0:
        return 0.0
    if spending == "obrien-fleming":
        return float(2 - 2 * sps.norm.cdf(sps.norm.isf(alpha / 2) / math.sqrt(t)))
    if spending == "pocock":
        return float(alpha * math.log(1 + (math.e - 1) * t))
    raise ValueError(f"unknown spending function {spending!r}; one of {', '.join(SPENDING)}")


@functools.lru_cache(maxsize=128)
def sequential_levels(looks: tuple[int, ...], alpha: float = DEFAULT_ALPHA,
                      spending: str = "obrien-fleming") -> tuple[float, ...]:
    """Nominal one-sided levels of a one-sample t test at each look that keep the overall level at ``alpha``.

    ``looks`` are the seed counts (pairs) at the looks, increasing; the last is the plan's. By look k
    the spending function (``alpha_spent``) allows alpha_spent(n_k / n_K); the critical value c_k of the
    t statistic is chosen so that the chance of crossing it first at look k, under the null, is what
    that look adds. The level returned is ``scipy.stats.t.sf(c_k, n_k - 1)`` (0 where nothing may be
    spent yet); one look is the fixed design, ``alpha`` exactly.

    The crossing chances are simulated, not read off the normal approximation: with a handful of seeds
    the t statistics of successive looks share their estimated SD, and the usual conversion (normal
    boundaries, e.g. from ``scipy.stats.multivariate_normal``, read back as t tail probabilities;
    Jennison & Turnbull 2000, section 3.8) let 5.3-5.4% through at a nominal 5% in this project's
    simulations. Under the null the t process is pivotal (its law depends on neither mean nor SD), so
    SEQUENTIAL_PATHS seeded draws of standard normal seeds give its boundary directly.
    """
    looks = tuple(int(n) for n in looks)
    if not looks or looks[0] < 2 or any(b <= a for a, b in itertools.pairwise(looks)):
        raise ValueError(f"looks must be increasing seed counts of 2 or more, not {looks}")
    if not 0 < alpha < 0.5:
        raise ValueError("alpha must be between 0 and 0.5")
    if len(looks) == 1:
        return (alpha,)
    rng = np.random.default_rng(SEQUENTIAL_SEED)
    paths = SEQUENTIAL_PATHS
    total, total_sq = np.zeros(paths), np.zeros(paths)
    alive = np.ones(paths, dtype=bool)
    crossed, seen, levels = 0, 0, []
    for n in looks:
        draws = rng.standard_normal((paths, n - seen))
        total += draws.sum(axis=1)
        total_sq += np.square(draws).sum(axis=1)
        seen = n
        mean = total / n
        sd = np.sqrt(np.maximum(total_sq - n * mean**2, 0.0) / (n - 1))
        t = mean / (sd / math.sqrt(n))
        allowed = math.floor(alpha_spent(n / looks[-1], alpha, spending) * paths + 1e-9)
        needed = allowed - crossed
        candidates = t[alive]
        if needed <= 0 or len(candidates) == 0:
            levels.append(0.0)
            continue
        needed = min(needed, len(candidates))
        critical = float(np.partition(candidates, len(candidates) - needed)[len(candidates) - needed])
        levels.append(float(sps.t.sf(critical, n - 1)))
        alive &= ~(t >= critical)
        crossed += needed
    return tuple(levels)


def look_levels(looks: tuple[int, ...], index: int, alpha: float = DEFAULT_ALPHA,
                spending: str = "obrien-fleming") -> Levels:
    """The ``Levels`` of look ``index`` (0-based) of a design that looks at ``looks`` seeds.

    The margin tests are one-sided at ``alpha`` each; the test of no difference is two-sided, so its
    boundary spends ``alpha / 2`` on each side.
    """
    margin = sequential_levels(tuple(looks), alpha, spending)[index]
    zero = 2 * sequential_levels(tuple(looks), alpha / 2, spending)[index]
    if len(looks) == 1:
        return Levels(margin, zero, alpha)
    name = {"obrien-fleming": "O'Brien-Fleming", "pocock": "Pocock"}[spending]
    return Levels(margin, zero, alpha, f"look {index + 1} of {len(looks)}, {name} spending")


# ----------------------------------------------------------------------------------------------------
# Timings: intervals over rounds and processes, tail percentiles, query counts, and the gate's test
# (used by bench/timing.py, bench/selection.py, bench/gate.py, bench/calibrate.py)
# ----------------------------------------------------------------------------------------------------

PERCENTILES = (50, 90, 99)
# numpy.percentile's default: linear interpolation between order statistics (Hyndman & Fan type 7).
PERCENTILE_METHOD = "numpy.percentile method='linear' (Hyndman-Fan type 7)"
QUANTILE_CI_METHOD = "order statistics, exact binomial (scipy.stats.quantile_test); independent values only"
ROUNDS_CI_METHOD = ("batch medians: Student t over 5 consecutive batches of rounds (scipy.stats.t), fixed-b; "
                    "adaptive rounds: at least Stein's two-stage half-width from the pilot")
TAIL_CI_METHOD = "Woodruff: exceedance rate ± t x HAC long-run sd (arch Bartlett kernel), mapped to order statistics"
# The strongest measured lag-1 autocorrelation of the queries at which tail_interval's 95% is claimed: it
# covers 94.2% at a true 0.6 and 93.0% at 0.7 (1,600 queries, simulated: see tail_interval); a series whose
# true lag-1 is 0.8 (92.2%) measures above 0.6. Past it the interval is labelled as below its level.
TAIL_CI_CHECKED_LAG1 = 0.6
PROCESS_CI_METHOD = "Student t on log process medians (scipy.stats.t), back-transformed: the geometric mean's"
RATIO_TEST_METHOD = "Welch t test on log process medians (scipy.stats.ttest_ind, equal_var=False)"
RATIO_TEST_CALIBRATED = "Welch t test on log process medians, each side's variance pooled with the calibrated one"
RATIO_TEST_PAIRED = ("paired t test on log process medians, each base process with the head process of its "
                     "interleaved block (scipy.stats.ttest_rel)")
ROUND_BATCHES = 5  # batches of consecutive rounds for the median's interval (see rounds_median_interval)
ROUND_PILOT = 30  # the fewest rounds an adaptive run plans its length from (rounds_needed)
MIN_ROUNDS_PER_BATCH = 4  # fewer rounds than 5 x 4 give no interval: batches of 1-3 rounds are not independent
BIMODAL_ALPHA = 0.003  # dip test level: lognormal noise reaches it in about 0.01% of lines (8 a side, simulated)
BIMODAL_MIN_PROCESSES = 8  # pooled processes below which no dip test is run (it could not reach BIMODAL_ALPHA)


def percentiles(times: Sequence[float], qs: Sequence[float] = PERCENTILES) -> dict[str, float]:
    """``{"p50": ..., "p90": ..., "p99": ...}`` of ``times`` by ``numpy.percentile`` (PERCENTILE_METHOD)."""
    x = _sample(times)
    values = np.percentile(x, list(qs), method="linear")
    return {f"p{q:g}": float(v) for q, v in zip(qs, values, strict=True)}


def quantile_interval(times: Sequence[float], p: float = 0.5,
                      confidence: float = DEFAULT_CONFIDENCE) -> tuple[float | None, float | None]:
    """Distribution-free interval of the ``p``-quantile of independent values (QUANTILE_CI_METHOD).

    ``scipy.stats.quantile_test(times, p=p).confidence_interval(confidence)``: the bounds are two of
    the observed times, chosen by the binomial distribution of the count below the quantile. It
    holds for independent values only: timed rounds are autocorrelated (lag-1 up to 0.55 in the
    reference results), so rounds use ``rounds_median_interval`` and ``tail_interval`` instead.
    A bound is None where there are too few values for the confidence.
    """
    x = _sample(times)
    ci = sps.quantile_test(x, q=float(np.median(x)), p=p).confidence_interval(confidence)
    bound = lambda v: float(v) if np.isfinite(v) else None
    return bound(ci.low), bound(ci.high)


def _batch_medians(x: np.ndarray) -> np.ndarray:
    return np.array([np.median(batch) for batch in np.array_split(x, ROUND_BATCHES)])


def rounds_median_interval(times: Sequence[float], confidence: float = DEFAULT_CONFIDENCE,
                           pilot: int | None = None) -> tuple[float | None, float | None]:
    """Interval of the rounds' median that holds when consecutive rounds are correlated (ROUNDS_CI_METHOD).

    The rounds, in the order they ran, are cut into ``ROUND_BATCHES`` consecutive batches; the
    batches' medians are nearly independent however the rounds correlate within a batch, and the
    interval is their mean ± ``scipy.stats.t.ppf`` x their standard error, on k - 1 degrees of
    freedom (the fixed-b batch means of Schmeiser 1982 and Kiefer-Vogelsang). The order-statistic
    interval covered 76% of the true median at lag-1 autocorrelation 0.5; this one covers >= 93%
    up to 0.5 from 20 rounds on (simulated in tests/test_stats_timings.py).

    ``pilot``: the rounds were as many as the first ``pilot`` of them asked for (adaptive rounds,
    ``rounds_needed``: Stein's two-stage design). Stopping on an interval that happened to come out
    narrow would make it cover less (85% in simulation), so the half-width is also at least Stein's,
    the pilot's standard error scaled to all the rounds: t x se(pilot) x sqrt(pilot / n). At the stop
    this covers >= 94% up to lag-1 autocorrelation 0.7 (tests/test_adaptive.py).
    None below ``ROUND_BATCHES * MIN_ROUNDS_PER_BATCH`` rounds.
    """
    x = _sample(times)
    if len(x) < ROUND_BATCHES * MIN_ROUNDS_PER_BATCH:
        return None, None
    medians = _batch_medians(x)
    critical = float(sps.t.ppf(0.5 + confidence / 2, ROUND_BATCHES - 1))
    half = critical * float(sps.sem(medians))
    if pilot is not None and ROUND_BATCHES * MIN_ROUNDS_PER_BATCH <= pilot <= len(x):
        half = max(half, critical * float(sps.sem(_batch_medians(x[:pilot]))) * math.sqrt(pilot / len(x)))
    center = float(np.mean(medians))
    return center - half, center + half


def rounds_needed(pilot_times: Sequence[float], target: float, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """Rounds for the median's interval to be within ± ``target`` (relative), planned from a pilot (Stein 1945).

    The pilot's batch medians give the standard error at its length; it shrinks as 1 / sqrt(rounds),
    so ``pilot * (t x se / (target x median))^2`` rounds reach the target, and at least the pilot.
    """
    x = _sample(pilot_times)
    if len(x) < ROUND_BATCHES * MIN_ROUNDS_PER_BATCH:
        raise ValueError(f"a pilot needs at least {ROUND_BATCHES * MIN_ROUNDS_PER_BATCH} rounds")
    critical = float(sps.t.ppf(0.5 + confidence / 2, ROUND_BATCHES - 1))
    error = critical * float(sps.sem(_batch_medians(x))) / (target * float(np.median(x)))
    return max(len(x), math.ceil(len(x) * error**2))


def median_half_width(times: Sequence[float], confidence: float = DEFAULT_CONFIDENCE,
                      pilot: int | None = None) -> float | None:
    """Half the width of ``rounds_median_interval`` relative to the rounds' median, or None."""
    low, high = rounds_median_interval(times, confidence, pilot)
    median = float(np.median(_sample(times)))
    if low is None or high is None or median <= 0:
        return None
    return (high - low) / 2 / median


def tail_interval(times: Sequence[float], p: float = 0.99,
                  confidence: float = DEFAULT_CONFIDENCE) -> tuple[float | None, float | None]:
    """Interval of the ``p``-quantile (e.g. the serving p99) of correlated times (TAIL_CI_METHOD).

    Woodruff's interval (1952): an interval for the share of times at or below the quantile, mapped
    back to the sorted times. Its spread is the long-run variance of the indicator "time <= the
    estimated quantile" (``arch.covariance.kernel.Bartlett``, Andrews' bandwidth), so correlated
    queries widen it; with independent queries it is the binomial interval. The order-statistic
    interval covered 58% at lag-1 autocorrelation 0.9 and 90% at 0.5. This one, for 1,600 lognormal
    AR(1) queries (400 series each, an open bound counted as covering), covers 94.2% at 0.6, 93.0% at
    0.7, 92.2% at 0.8 and 88% at 0.9: so its record carries the measured lag-1 and a label
    (``tail_interval_label``). A bound is None (open) where it would fall outside the times measured.
    """
    x = _sample(times)
    n = len(x)
    indicator = (x <= np.quantile(x, p)).astype(float)
    long_run = p * (1 - p)  # the independent case, and the fallback where the kernel has nothing to estimate
    if np.ptp(indicator) > 0:
        # ZeroDivisionError: arch's bandwidth rule on a series with no autocorrelation to measure.
        with contextlib.suppress(ZeroDivisionError):
            long_run = float(_kernel.Bartlett(indicator).cov.long_run[0, 0])
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * math.sqrt(long_run / n)
    ordered = np.sort(x)
    low, high = math.floor(n * (p - half)), math.ceil(n * (p + half))
    return (float(ordered[low]) if low >= 0 else None), (float(ordered[high]) if high <= n - 1 else None)


def lag1_autocorrelation(times: Sequence[float]) -> float | None:
    """The lag-1 autocorrelation of consecutive times (statsmodels' ``acf``); None for < 3 or constant times."""
    x = _sample(times)
    if len(x) < 3 or np.ptp(x) == 0:
        return None
    return float(_tsa.acf(x, nlags=1, fft=False)[1])


def tail_interval_label(lag1: float | None, confidence: float = DEFAULT_CONFIDENCE) -> str:
    """What ``tail_interval`` is, given the queries' measured lag-1 autocorrelation.

    Its ``confidence`` holds (>= 93% for 95%, simulated) up to TAIL_CI_CHECKED_LAG1; more strongly
    correlated queries carry too little information for the interval to hold it (88% at 0.9), so
    there the label says so instead of claiming the level.
    """
    level = f"{confidence * 100:g}%"
    if lag1 is None:
        return f"{level} (lag-1 autocorrelation not measured)"
    if lag1 <= TAIL_CI_CHECKED_LAG1:
        return f"{level} (queries' lag-1 autocorrelation {lag1:.2f})"
    return (f"below {level}: the queries' lag-1 autocorrelation is {lag1:.2f}, past the {TAIL_CI_CHECKED_LAG1:g} "
            f"up to which it covers {level} (88% at 0.9, simulated)")


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
    exist and lie within ``percentile ± margin``. The count assumes independent queries, as MLPerf's
    does; correlated queries widen the recorded interval (``tail_interval``) past the margin.
    Raises ValueError when no n up to ``limit`` does.
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
    """The geometric mean of process medians and its Student t interval on the log scale (PROCESS_CI_METHOD).

    Process medians spread multiplicatively (lognormal), so the interval is
    ``scipy.stats.t.interval(confidence, n - 1, mean(log m), sem(log m))``, exponentiated: an
    interval for the typical process median. The percentile bootstrap it replaces covered 73% with
    3 processes (a bootstrap cannot see beyond the 3 values it is given); this one covers 95%
    under lognormal noise (tests/test_stats_timings.py). One process gives no interval; processes
    with identical medians a zero-width one.
    """
    x = _sample(medians)
    if np.any(x <= 0):
        raise ValueError("process medians must be positive")
    logs = np.log(x)
    estimate = float(np.exp(np.mean(logs)))
    if len(x) < 2:
        return Interval(estimate, None, None, len(x), confidence)
    if np.ptp(x) == 0:
        return Interval(float(x[0]), float(x[0]), float(x[0]), len(x), confidence)
    low, high = sps.t.interval(confidence, len(x) - 1, loc=float(np.mean(logs)), scale=float(sps.sem(logs)))
    return Interval(estimate, float(np.exp(low)), float(np.exp(high)), len(x), confidence)


def process_spread(medians: Sequence[float]) -> float:
    """The largest ratio between two process medians, minus 1: how far apart the same code landed."""
    x = _sample(medians)
    return float(np.max(x) / np.min(x) - 1) if np.min(x) > 0 else math.inf


def process_variation(medians: Sequence[float]) -> float | None:
    """Coefficient of variation of process medians (``scipy.stats.variation``, ddof=1); None for one process."""
    x = _sample(medians)
    return float(sps.variation(x, ddof=1)) if len(x) > 1 else None


@dataclass(frozen=True)
class ProcessNoise:
    """The noise between processes of one benchmark on one machine: the variance of log process medians."""

    variance: float  # of natural-log process medians, ddof=1 (0.0004 is a 2% sd)
    df: int  # its degrees of freedom: processes - 1

    @property
    def sd(self) -> float:
        return math.sqrt(self.variance)


def process_noise(medians: Sequence[float]) -> ProcessNoise | None:
    """``ProcessNoise`` of an A/A set of process medians (``numpy.var(log m, ddof=1)``); None for one process."""
    x = _sample(medians)
    if len(x) < 2:
        return None
    return ProcessNoise(float(np.var(np.log(x), ddof=1)), len(x) - 1)


@dataclass(frozen=True)
class RatioTest:
    """current / baseline, each side the geometric mean of its process medians, with a one-sided test each way.

    Fields are floats for one comparison, or arrays of one shape when ``log_ratio_test`` was given
    stacks of comparisons (the simulations).
    """

    ratio: Any  # exp(mean log current - mean log baseline)
    low: Any  # the two-sided ``confidence`` interval of the ratio
    high: Any
    p_slower: Any  # one-sided p of "current is slower"
    p_faster: Any  # one-sided p of "current is faster"
    df: Any  # Welch-Satterthwaite degrees of freedom
    se: Any  # standard error of the log ratio
    confidence: float
    processes: tuple[int, int]  # baseline, current
    noise_df: int = 0  # degrees of freedom borrowed from a calibration (0: none)
    method: str = RATIO_TEST_METHOD
    paired: bool = False  # paired_log_ratio_test: df and se are those of the per-block differences


def log_ratio_test(baseline: Any, current: Any, confidence: float = DEFAULT_CONFIDENCE,
                   noise: ProcessNoise | None = None) -> RatioTest:
    """Is current slower or faster than baseline? Welch's t test on log process medians (RATIO_TEST_METHOD).

    ``baseline`` and ``current`` are process medians (the last axis: processes; leading axes: stacks
    of comparisons). Without ``noise`` the test is ``scipy.stats.ttest_ind(log current, log baseline,
    equal_var=False)`` with ``alternative="greater"`` (slower) and ``"less"`` (faster), and the
    interval its ``confidence_interval``, exponentiated. Welch, not the pooled t, because a change
    can make one side noisier: the pooled test then false-alarms (e.g. 3 noisy processes against 8
    quiet ones). Each side needs 2 processes; the test holds its level with 2 or 3.

    With ``noise`` (this machine's calibrated variance of log process medians, with its degrees of
    freedom), each side's variance is pooled with the calibrated one before Welch's formula:
    ``(df0 s0^2 + (n - 1) s^2) / (df0 + n - 1)``. Both sides pool the same calibration, so the
    Welch-Satterthwaite degrees of freedom are taken over the three independent estimates (the
    calibration, each side's own), the calibration counted once: counted in each side, as
    ``df0 + n - 1`` per side, they doubled its df, and the test false-alarmed 5.2-5.5% at a nominal 5%
    (3 a side, a 6- or 12-process calibration; 4.5-4.7% with this rule; 20,000 simulated runs each).
    No library test takes an outside variance estimate, so these lines write out Welch's statistic
    and degrees of freedom; with df0 = 0 they equal SciPy's (the tests check), and ``scipy.stats.t``
    gives the p-values and the interval.
    """
    x, y = _log_medians(baseline, current, confidence)
    nb, nc = x.shape[-1], y.shape[-1]
    if min(nb, nc) < 2:
        raise ValueError("each side needs at least 2 processes")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("process medians must be positive and finite")
    difference = np.mean(y, axis=-1) - np.mean(x, axis=-1)
    df0 = 0 if noise is None else noise.df
    dfb, dfc = df0 + nb - 1, df0 + nc - 1
    # se^2 = vb / nb + vc / nc, as the sum of its independent parts, each (variance of the mean, its df).
    parts = [((nb - 1) * np.var(x, axis=-1, ddof=1) / (nb * dfb), nb - 1),
             ((nc - 1) * np.var(y, axis=-1, ddof=1) / (nc * dfc), nc - 1)]
    if df0:
        parts.append((df0 * noise.variance * (1 / (nb * dfb) + 1 / (nc * dfc)), df0))
    se = np.sqrt(sum(v for v, _ in parts))
    with np.errstate(divide="ignore", invalid="ignore"):
        df = se**4 / sum(v**2 / d for v, d in parts)
        statistic = difference / se
    # Identical medians on both sides (se 0): _ratio_test answers exactly; df is then every estimate's.
    exact = se == 0
    df = np.where(exact, float(df0 + nb + nc - 2), df)
    p_slower, p_faster = sps.t.sf(statistic, df), sps.t.cdf(statistic, df)
    if noise is None and not np.all(exact):  # the library's own numbers where it has them (identical there)
        slower = sps.ttest_ind(y, x, axis=-1, equal_var=False, alternative="greater")
        p_slower, p_faster = slower.pvalue, 1 - slower.pvalue
    return _ratio_test(difference, se, df, p_slower, p_faster, confidence, (nb, nc),
                       noise_df=0 if noise is None else noise.df,
                       method=RATIO_TEST_METHOD if noise is None else RATIO_TEST_CALIBRATED)


def _log_medians(baseline: Any, current: Any, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Both tests' start: the confidence checked, the process medians' logs."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    return np.log(np.asarray(baseline, dtype=float)), np.log(np.asarray(current, dtype=float))


def _ratio_test(difference: Any, se: Any, df: Any, p_slower: Any, p_faster: Any, confidence: float,
                processes: tuple[int, int], **fields: Any) -> RatioTest:
    """Both tests' end. Where se is 0 the difference is exact (a zero difference is no change); the
    interval is the t interval of the log difference, exponentiated; floats for one comparison."""
    exact = se == 0
    p_slower = np.where(exact, np.where(difference > 0, 0.0, 1.0), p_slower)
    p_faster = np.where(exact, np.where(difference < 0, 0.0, 1.0), p_faster)
    half = sps.t.ppf(0.5 + confidence / 2, df) * se
    scalar = lambda v: float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=float)
    return RatioTest(ratio=scalar(np.exp(difference)), low=scalar(np.exp(difference - half)),
                     high=scalar(np.exp(difference + half)), p_slower=scalar(p_slower), p_faster=scalar(p_faster),
                     df=scalar(df), se=scalar(se), confidence=confidence, processes=processes, **fields)


def paired_log_ratio_test(baseline: Any, current: Any, confidence: float = DEFAULT_CONFIDENCE) -> RatioTest:
    """``log_ratio_test`` for an interleaved design: ``baseline[..., i]`` and ``current[..., i]`` ran in one
    block, back to back (``ab``'s repeat i), so the machine's drift from block to block, which both share,
    cancels in their difference (RATIO_TEST_PAIRED).

    ``scipy.stats.ttest_rel(log current, log baseline)`` with ``alternative="greater"`` (slower) and the
    t interval of the mean difference, exponentiated; n - 1 degrees of freedom for n blocks. On this
    machine's four 7-process ab runs of the CI's lines its standard error was 0.23 to 1.12 times
    Welch's on the same medians (median 0.70, 40 lines); where blocks share nothing it is about the
    same as Welch's, and Welch, with twice the degrees of freedom, resolves more.
    """
    x, y = _log_medians(baseline, current, confidence)
    if x.shape != y.shape:
        raise ValueError("a paired test needs one baseline and one current process per block")
    n = x.shape[-1]
    if n < 2:
        raise ValueError("a paired test needs at least 2 blocks")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("process medians must be positive and finite")
    d = y - x
    difference, se = np.mean(d, axis=-1), np.std(d, axis=-1, ddof=1) / math.sqrt(n)
    df = np.full(np.shape(difference), float(n - 1))
    with warnings.catch_warnings():  # where every block differs alike (se 0), _ratio_test answers exactly
        warnings.simplefilter("ignore", RuntimeWarning)
        slower = sps.ttest_rel(y, x, axis=-1, alternative="greater").pvalue
    return _ratio_test(difference, se, df, slower, 1 - slower, confidence, (n, n), method=RATIO_TEST_PAIRED,
                       paired=True)


def holm(p_values: Sequence[float], alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """Holm's step-down adjusted p-values (``statsmodels.stats.multitest.multipletests(method="holm")``).

    Rejecting every hypothesis whose adjusted p is below ``alpha`` keeps the chance of any false
    rejection among them at most ``alpha``, whatever their dependence (lines of one run share processes).
    """
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    return _multitest.multipletests(p, alpha=alpha, method="holm")[1]


def detectable_slowdown(test: RatioTest, alpha: float, threshold: float = 0.0, power: float = 0.80) -> float:
    """The smallest slowdown (0.05 = 5%) that the gate flags with at least ``power``, at this comparison's noise.

    The gate flags a line when its one-sided test rejects at ``alpha`` (for one slowed line among m,
    Holm tests it at alpha / m: pass that) *and* the estimate is past ``threshold``. The chance of both
    is at least P(the test rejects) + P(the estimate is past the threshold) - 1 (``_flag_power``),
    which is solved for the slowdown (``scipy.optimize.brentq``): so the figure has at least
    ``power`` where the two bind at once (a slowdown just past a threshold the noise can resolve),
    and is the test's own power point where one of them alone decides.
    """
    # The sample variance of a few processes is more often too small than too large (its median is
    # chi2.median(df) / df of the truth): scaled to be median-unbiased, the figure a typical run states
    # is the slowdown it really resolves, instead of an optimistic one.
    se = float(test.se) * math.sqrt(float(test.df) / float(sps.chi2.median(float(test.df))))
    # A paired test's figure is the same noncentral t (the log slowdown / se, on its own df), so one
    # formula serves both: statsmodels' TTestPower over n blocks gives it too (tests check).
    return _detectable(se, float(test.df), test.processes, alpha, threshold, power)


def _planned(noise: ProcessNoise, processes: int) -> tuple[float, float]:
    """The standard error and degrees of freedom a comparison of ``processes`` a side would have at ``noise``,
    with ``noise`` pooled in as ``log_ratio_test`` pools it: its Welch-Satterthwaite df when every
    estimate equals the calibrated variance, 2 (df0 + n - 1)^2 / (2 df0 + n - 1)."""
    own = processes - 1
    return noise.sd * math.sqrt(2 / processes), 2.0 * (noise.df + own) ** 2 / (2 * noise.df + own)


def planned_slowdown(noise: ProcessNoise, processes: int, alpha: float, threshold: float = 0.0,
                     power: float = 0.80) -> float:
    """``detectable_slowdown`` before measuring: ``processes`` a side at this calibrated ``noise``."""
    se, df = _planned(noise, processes)
    return _detectable(se, df, (processes, processes), alpha, threshold, power)


def planned_power(noise: ProcessNoise, processes: int, slowdown: float, alpha: float, threshold: float = 0.0) -> float:
    """The chance, at least, that the gate flags a true ``slowdown`` with ``processes`` a side at this calibrated
    ``noise``: the same rule as ``detectable_slowdown`` (``_flag_power``)."""
    se, df = _planned(noise, processes)
    if se == 0:
        return float(slowdown > threshold)
    return _flag_power(math.log1p(slowdown), se, df, (processes, processes), alpha, threshold)


def _flag_power(effect: float, se: float, df: float, processes: tuple[int, int], alpha: float,
                threshold: float) -> float:
    """A lower bound of the chance that the gate flags a true log slowdown ``effect``: its test rejects at
    ``alpha`` (``statsmodels.stats.power.TTestIndPower``, the noncentral t on ``df``) and the estimate,
    normal with sd ``se``, is past ``log(1 + threshold)`` (``scipy.stats.norm``).

    The exact chance of both needs the joint law of the estimate and its standard error; their sum
    minus 1 is the usual bound (as ``tost_power`` takes for TOST's two tests). The test alone, at the
    level the threshold implies, overstates it where both bind: at 10 a side, 2% noise and a 3%
    threshold, the gate flagged 74.7% at a figure stated for 80% (simulated, 4,000 runs).
    """
    nb, nc = processes
    unit = se / math.sqrt(1 / nb + 1 / nc)  # the per-process sd, in which statsmodels takes the effect size
    rejects = float(_power.TTestIndPower().power(effect / unit, nobs1=nb, alpha=alpha, ratio=nc / nb, df=df,
                                                 alternative="larger"))
    rejects = rejects if math.isfinite(rejects) else 1.0  # far past the critical value the nct's tail is NaN
    if threshold <= 0:
        return rejects  # a one-sided rejection already puts the estimate past 0
    past = float(sps.norm.sf((math.log1p(threshold) - effect) / se))
    return max(0.0, rejects + past - 1)


def _detectable(se: float, df: float, processes: tuple[int, int], alpha: float, threshold: float,
                power: float) -> float:
    if se == 0:
        return threshold
    reach = lambda effect: _flag_power(effect, se, df, processes, alpha, threshold) - power
    high = se  # bracket the root by doubling: effects past a few hundred se leave the nct's numerical range
    while reach(high) < 0 and high < 1e6 * se:
        high *= 2
    # xtol 1e-4 se: far finer than the figure printed.
    return math.expm1(_optimize.brentq(reach, 0.0, high, xtol=1e-4 * se))


@dataclass(frozen=True)
class Modes:
    """Process medians that fall into two modes (a fast and a slow one) on at least one side."""

    p_value: float  # Hartigan's dip test of the sides' log process medians, pooled
    boundary: float  # a median below it is in the fast mode (same unit as the medians)
    sides: tuple[tuple[int, float | None, int, float | None], ...]  # per side: fast count, its median, slow, its

    def describe(self, names: Sequence[str] = ("baseline", "current"), unit: str = "ms", scale: float = 1.0) -> str:
        """'bimodal (dip test p = 0.003): baseline 8 of 24 processes near 330 ms, 16 near 400 ms; ...'"""
        parts = []
        for name, (fast, fast_at, slow, slow_at) in zip(names, self.sides, strict=False):
            total = fast + slow
            near = lambda at: f"{at * scale:.3g} {unit}"
            side = f"{name} " if name else ""
            if fast and slow:
                parts.append(f"{side}{fast} of {total} processes near {near(fast_at)}, {slow} near {near(slow_at)}")
            else:
                parts.append(f"{side}all {total} near {near(fast_at if fast else slow_at)}")
        return f"bimodal (dip test p = {self.p_value:.2g}): " + "; ".join(parts)


def bimodality_p(sides: Sequence[Any], min_processes: int = BIMODAL_MIN_PROCESSES) -> Any:
    """The dip test's p of the sides' process medians pooled; NaN where two modes cannot be what they show.

    Each side's last axis is its processes (leading axes: stacks, as in the simulations). The log
    medians of all sides are pooled and given Hartigan's dip test (``diptest.diptest``). The p is
    NaN where fewer than ``min_processes`` are pooled, or where the largest gap between the pooled
    medians has some side wholly on one side of it: then the two groups are the sides themselves
    (a slowdown), not two modes that every side visits.
    """
    pooled = np.concatenate([np.log(np.asarray(side, dtype=float)) for side in sides], axis=-1)
    labels = np.concatenate([np.full(np.shape(side)[-1], i) for i, side in enumerate(sides)])
    order = np.argsort(pooled, axis=-1)
    ordered, owner = np.take_along_axis(pooled, order, axis=-1), labels[order]
    below = np.arange(pooled.shape[-1]) <= np.argmax(np.diff(ordered, axis=-1), axis=-1)[..., None]
    every_side_in_both = np.all([np.any(below & (owner == i), axis=-1) & np.any(~below & (owner == i), axis=-1)
                                 for i in range(len(sides))], axis=0)
    p = np.full(pooled.shape[:-1], np.nan)
    if pooled.shape[-1] >= min_processes:
        for i in zip(*np.nonzero(every_side_in_both), strict=True) if p.ndim else [()] * bool(every_side_in_both):
            p[i] = diptest.diptest(ordered[i])[1]
    return float(p) if p.ndim == 0 else p


def process_modes(sides: Sequence[Sequence[float]], alpha: float = BIMODAL_ALPHA,
                  min_processes: int = BIMODAL_MIN_PROCESSES) -> Modes | None:
    """Two modes among the process medians of one or more sides (e.g. 330 and 400 ms), or None.

    Bimodal when ``bimodality_p`` is below ``alpha``; the modes are split at the largest gap
    between the sorted medians of all sides. The dip test's p is calibrated against the uniform,
    so unimodal timing noise (lognormal) reaches ``alpha`` in about 0.01% of lines with 8 processes
    a side, while a 1:2 split of 330 and 400 ms is found in half of them (simulated; more processes
    find it more often), and a 20% slowdown is never taken for two modes.
    """
    p_value = bimodality_p(sides, min_processes)
    if not p_value < alpha:  # NaN (nothing tested) included
        return None
    pooled = np.sort(np.concatenate([np.log(_sample(side)) for side in sides]))
    gap = int(np.argmax(np.diff(pooled)))
    boundary = float(np.exp((pooled[gap] + pooled[gap + 1]) / 2))
    described = []
    for side in sides:
        values = _sample(side)
        fast, slow = values[values < boundary], values[values >= boundary]
        described.append((len(fast), float(np.median(fast)) if len(fast) else None,
                          len(slow), float(np.median(slow)) if len(slow) else None))
    return Modes(p_value, boundary, tuple(described))
