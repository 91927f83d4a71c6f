"""Statistics: small documented functions over SciPy, statsmodels and NumPy, never hand-written formulas.

Each section answers one question and says which library call does the work; where no kept library
has the method (the group-sequential boundary), its comment says so and cites the method. Sections
are added by appending under a heading of their own; readers (report, parity, compare) import from here.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from statsmodels.stats.power import TTestIndPower, TTestPower

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
    power = TTestPower().power if paired else TTestIndPower().power  # their second argument: n (per side)
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
