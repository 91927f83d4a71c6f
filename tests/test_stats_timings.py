"""bench.stats, Timings section: the gate's test, Holm, the detectable slowdown, every printed interval's
coverage and the bimodality check, in seeded simulations (each fails if its rule is swapped for the old one)."""

import math

import numpy as np
import pytest
from scipy import signal
from scipy import stats as sps

from bench import results, selection, stats
from tests.test_compare import processes


def lognormal_medians(rng, shape, sigma):
    return np.exp(sigma * rng.standard_normal(shape))


# ------------------------------------------------------------------------------------------- the test

def test_log_ratio_test_is_welchs_on_log_medians():
    rng = np.random.default_rng(0)
    base, cur = lognormal_medians(rng, 4, 0.02), 1.03 * lognormal_medians(rng, 6, 0.05)
    test = stats.log_ratio_test(base, cur)
    welch = sps.ttest_ind(np.log(cur), np.log(base), equal_var=False)
    assert test.p_slower == pytest.approx(welch.pvalue / 2) and test.p_faster == pytest.approx(1 - welch.pvalue / 2)
    assert test.df == pytest.approx(welch.df) and test.processes == (4, 6)
    ci = welch.confidence_interval(0.95)
    assert (test.low, test.high) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    assert test.ratio == pytest.approx(math.exp(np.mean(np.log(cur)) - np.mean(np.log(base))))
    # A calibration with no degrees of freedom changes nothing; one with many narrows the interval.
    same = stats.log_ratio_test(base, cur, noise=stats.ProcessNoise(0.5, 0))
    assert (same.p_slower, same.low, same.high, same.df) == pytest.approx((test.p_slower, test.low, test.high, test.df))
    calibrated = stats.log_ratio_test(base, cur, noise=stats.ProcessNoise(0.03**2, 40))
    # More degrees of freedom than the two sides alone, never more than every estimate holds (the
    # calibration's 40 counted once, though both sides pool it).
    assert test.df < calibrated.df < 40 + 3 + 5 and calibrated.high - calibrated.low < test.high - test.low
    assert calibrated.method == stats.RATIO_TEST_CALIBRATED and calibrated.noise_df == 40
    with pytest.raises(ValueError, match="at least 2 processes"):
        stats.log_ratio_test([1.0], [1.0, 1.1])


def test_identical_medians_give_an_exact_answer():
    same = stats.log_ratio_test([0.1, 0.1, 0.1], [0.1, 0.1, 0.1])
    assert same.ratio == 1 and same.p_slower == 1 and same.p_faster == 1 and same.low == same.high == 1
    slower = stats.log_ratio_test([0.1, 0.1], [0.2, 0.2])
    assert slower.p_slower == 0 and slower.p_faster == 1 and slower.ratio == pytest.approx(2)


@pytest.mark.parametrize(("n_base", "sigma_base", "n_cur", "sigma_cur"), [
    (3, 0.02, 3, 0.02),  # the fewest processes the gate acts on
    (8, 0.02, 8, 0.02),  # the CI's
    (8, 0.01, 3, 0.05),  # a change made the current side noisier, with fewer processes: pooled t fails here
])
def test_the_test_holds_its_level_in_a_a(n_base, sigma_base, n_cur, sigma_cur):
    rng = np.random.default_rng(1)
    base = lognormal_medians(rng, (20000, n_base), sigma_base)
    cur = lognormal_medians(rng, (20000, n_cur), sigma_cur)
    test = stats.log_ratio_test(base, cur)
    assert np.mean(test.p_slower < 0.05) <= 0.058 and np.mean(test.p_faster < 0.05) <= 0.058
    if sigma_base == sigma_cur:  # the tail Holm uses for one line of 13 (with 3 noisy against 8 quiet
        # processes Welch's 2 degrees of freedom reach it 2.8 times too often: a limit of the test, not the gate's)
        assert np.mean(test.p_slower < 0.05 / 13) <= 0.0055
    covered = (test.low <= 1) & (test.high >= 1)
    assert np.mean(covered) >= 0.93


def test_pooled_variance_would_not_hold_its_level_there():
    # The scenario above discriminates: Student's pooled t on the same draws false-alarms far more.
    rng = np.random.default_rng(1)
    base, cur = lognormal_medians(rng, (20000, 8), 0.01), lognormal_medians(rng, (20000, 3), 0.05)
    pooled = sps.ttest_ind(np.log(cur), np.log(base), axis=-1, equal_var=True, alternative="greater")
    assert np.mean(pooled.pvalue < 0.05) > 0.1


def test_the_calibrated_test_holds_its_level_when_the_calibration_is_this_machines():
    rng = np.random.default_rng(2)
    runs = 6000  # reads the rate to ±0.3 points (the df rule itself: test_a_calibration_is_pooled_into_each_row)
    calibrations = lognormal_medians(rng, (runs, 12), 0.02)  # an A/A calibration of 12 processes per run
    rejected = 0
    for calibration, base, cur in zip(calibrations, lognormal_medians(rng, (runs, 3), 0.02),
                                      lognormal_medians(rng, (runs, 3), 0.02), strict=True):
        rejected += stats.log_ratio_test(base, cur, noise=stats.process_noise(calibration)).p_slower < 0.05
    assert 0.042 <= rejected / runs <= 0.058


def test_holm_adjusts_as_holm_does():
    # p sorted 0.01, 0.03, 0.04 over m = 3: 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04).
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([]).size == 0


def test_the_detectable_slowdown_is_the_80_percent_power_point():
    # With many degrees of freedom (a calibrated machine), check against the noncentral t directly.
    rng = np.random.default_rng(3)
    base, cur = lognormal_medians(rng, 8, 0.02), lognormal_medians(rng, 8, 0.02)
    test = stats.log_ratio_test(base, cur, noise=stats.ProcessNoise(0.02**2, 400))
    alpha = 0.05 / 13
    slowdown = stats.detectable_slowdown(test, alpha)
    se = test.se * math.sqrt(test.df / sps.chi2.median(test.df))
    power = sps.nct.sf(sps.t.ppf(1 - alpha, test.df), test.df, math.log1p(slowdown) / se)
    assert power == pytest.approx(0.80, abs=0.002)
    # A threshold past that point is what limits: the slowdown must clear it with 80% power.
    past = stats.detectable_slowdown(test, alpha, threshold=0.10)
    assert sps.norm.sf((math.log1p(0.10) - math.log1p(past)) / se) == pytest.approx(0.80, abs=0.01)
    assert stats.detectable_slowdown(stats.log_ratio_test([1.0, 1.0], [1.0, 1.0]), alpha, 0.03) == 0.03


def test_a_slowdown_far_past_the_critical_value_is_flagged_for_certain():
    # There statsmodels' noncentral t tail is NaN (effect size 1e5 sd, alpha 1e-8, 2 df): the chance is 1, not NaN
    # or 0, and never above 1, with a threshold or without.
    se = 0.01 * math.sqrt(2 / 3)  # 3 a side at a per-process sd of 1%
    assert np.isnan(stats._power.TTestIndPower().power(1e5, nobs1=3, alpha=1e-8, ratio=1.0, df=2,
                                                       alternative="larger"))
    for threshold in (0.0, 0.03):
        assert stats._flag_power(1e5 * 0.01, se, 2, (3, 3), 1e-8, threshold) == 1.0


def test_the_detectable_slowdown_is_found_however_noisy_the_line():
    # A line so noisy that 80% power needs a log slowdown past 2 (a 7.4x step): the root is still bracketed and found.
    for se in (0.01, 0.5, 1.0):
        slowdown = stats._detectable(se, 4, (3, 3), 0.005, 0.03, 0.8)
        assert stats._flag_power(math.log1p(slowdown), se, 4, (3, 3), 0.005, 0.03) == pytest.approx(0.8, abs=1e-3)
    assert math.log1p(stats._detectable(1.0, 4, (3, 3), 0.005, 0.03, 0.8)) > 2


# -------------------------------------------------------------------------------- intervals that cover

def test_the_process_interval_covers_with_three_processes():
    rng = np.random.default_rng(4)
    draws = lognormal_medians(rng, (1500, 3), 0.03)
    hits = [(i.low <= 1 <= i.high) for i in map(stats.process_interval, draws)]
    assert 0.93 <= np.mean(hits) <= 0.97
    # The percentile bootstrap it replaced, over the same draws: it cannot see beyond 3 values.
    boot = [sps.bootstrap((d,), np.median, method="percentile", n_resamples=500,
                          rng=np.random.default_rng(0)).confidence_interval for d in draws[:200]]
    assert np.mean([b.low <= 1 <= b.high for b in boot]) < 0.8


def test_aggregate_prints_the_process_interval(tmp_path):
    rows = results.results_of(results.load([processes(tmp_path, "cur", [0.100, 0.110, 0.120], spread=0.0)])[0])
    summary = selection.aggregate(rows)
    interval = stats.process_interval([100.0, 110.0, 120.0])
    assert summary.median_ms == pytest.approx(110) and summary.processes == 3
    assert (summary.low_ms, summary.high_ms) == pytest.approx((interval.low, interval.high))
    assert summary.low_ms < 100 and summary.high_ms > 120  # 3 processes: wider than their range


def ar1(rng, rho, shape, sigma):
    steps = rng.standard_normal((*shape[:-1], shape[-1] + 100)) * math.sqrt(1 - rho**2)
    return 0.1 * np.exp(sigma * signal.lfilter([1], [1, -rho], steps, axis=-1)[..., 100:])


@pytest.mark.parametrize("rho", [0.0, 0.5])
def test_the_rounds_median_interval_covers_under_correlated_rounds(rho):
    series = ar1(np.random.default_rng(5), rho, (1000, 50), 0.05)
    hits = [low <= 0.1 <= high for low, high in map(stats.rounds_median_interval, series)]
    assert np.mean(hits) >= 0.93
    if rho:  # the order-statistic interval, which assumes independent rounds, does not
        old = [sps.quantile_test(s, q=np.median(s), p=0.5).confidence_interval(0.95) for s in series[:300]]
        assert np.mean([o.low <= 0.1 <= o.high for o in old]) < 0.88


def test_the_tail_interval_covers_the_serving_p99_under_correlated_queries():
    rng = np.random.default_rng(6)
    series = ar1(rng, 0.5, (300, 1600), 0.05)
    truth = 0.1 * math.exp(0.05 * sps.norm.ppf(0.99))
    bounds = [stats.tail_interval(s, 0.99) for s in series]
    assert np.mean([low is not None and low <= truth <= high for low, high in bounds]) >= 0.93
    old = [stats.quantile_interval(s, 0.99) for s in series]
    assert np.mean([low <= truth <= high for low, high in old]) < 0.93
    assert stats.tail_interval(series[0][:50], 0.99)[1] is None  # 50 queries: no upper bound for a p99


@pytest.mark.parametrize("rho", [0.6, 0.9])
def test_the_p99_interval_is_labelled_95_only_where_it_covers_95(rho):
    series = ar1(np.random.default_rng(16), rho, (300, 1600), 0.05)
    truth = 0.1 * math.exp(0.05 * sps.norm.ppf(0.99))
    bounds = [stats.tail_interval(s, 0.99) for s in series]
    coverage = np.mean([(low is None or low <= truth) and (high is None or truth <= high) for low, high in bounds])
    labels = [stats.tail_interval_label(stats.lag1_autocorrelation(s)) for s in series]
    claimed = np.mean([label.startswith("95%") for label in labels])
    if rho == 0.6:
        assert coverage >= 0.93 and claimed > 0.5  # most are labelled 95%, and they cover it
    else:
        assert coverage < 0.93 and claimed == 0  # none claims a level it does not reach
        assert labels[0].startswith("below 95%: the queries' lag-1 autocorrelation is 0.")


def test_lag1_autocorrelation_is_statsmodels_acf():
    x = ar1(np.random.default_rng(3), 0.5, (1, 500), 0.05)[0]
    centred = x - x.mean()
    assert stats.lag1_autocorrelation(x) == pytest.approx(np.dot(centred[1:], centred[:-1]) / np.dot(centred, centred))
    assert stats.lag1_autocorrelation([1.0, 1.0, 1.0]) is None and stats.lag1_autocorrelation([1.0, 2.0]) is None
    # Three times are enough. Centred -1, 0, 1: (0 x -1 + 1 x 0) / 2 = 0; centred -1, 1, 0: (1 x -1 + 0 x 1) / 2.
    assert stats.lag1_autocorrelation([1.0, 2.0, 3.0]) == pytest.approx(0.0)
    assert stats.lag1_autocorrelation([1.0, 3.0, 2.0]) == pytest.approx(-0.5)
    assert stats.tail_interval_label(None) == "95% (lag-1 autocorrelation not measured)"
    assert stats.tail_interval_label(0.6) == "95% (queries' lag-1 autocorrelation 0.60)"


# ------------------------------------------------------------------------------------------- two modes

def test_two_modes_are_found_and_one_mode_is_not_taken_for_two():
    rng = np.random.default_rng(7)
    unimodal = lognormal_medians(rng, (3000, 2, 8), 0.02)
    assert np.mean(stats.bimodality_p([unimodal[:, 0], unimodal[:, 1]]) < stats.BIMODAL_ALPHA) < 0.002
    fast = rng.random((600, 2, 12)) < 1 / 3
    bimodal = np.where(fast, 1.0, 400 / 330) * lognormal_medians(rng, (600, 2, 12), 0.01)
    assert np.mean(stats.bimodality_p([bimodal[:, 0], bimodal[:, 1]]) < stats.BIMODAL_ALPHA) > 0.5
    shifted = [unimodal[:300, 0], 1.2 * unimodal[:300, 1]]  # a 20% slowdown is two groups, not two modes
    assert np.all(np.isnan(stats.bimodality_p(shifted)))
    assert math.isnan(stats.bimodality_p([[1.0, 1.1, 1.2], [1.0, 1.1, 1.2]]))  # too few to look


def test_modes_are_described_per_side():
    medians = [330.0] * 4 + [400.0] * 8
    modes = stats.process_modes([medians, [331.0] * 4 + [401.0] * 8])
    assert modes.describe() == (f"bimodal (dip test p = {modes.p_value:.2g}): baseline 4 of 12 processes near "
                                "330 ms, 8 near 400 ms; current 4 of 12 processes near 331 ms, 8 near 401 ms")
    assert 331 < modes.boundary < 400


# ------------------------------------------------------- every number against SciPy or a hand computation

def test_stacks_of_comparisons_are_tested_row_by_row():
    base = np.array([[0.100, 0.104, 0.098, 0.102], [0.200, 0.230, 0.190, 0.210]])
    cur = np.array([[0.110, 0.115, 0.108], [0.200, 0.199, 0.240]])
    test = stats.log_ratio_test(base, cur, confidence=0.9)
    assert test.confidence == 0.9 and test.noise_df == 0 and test.method == stats.RATIO_TEST_METHOD
    for row in range(2):
        x, y = np.log(base[row]), np.log(cur[row])
        welch = sps.ttest_ind(y, x, equal_var=False, alternative="greater")
        ci = sps.ttest_ind(y, x, equal_var=False).confidence_interval(0.9)
        assert test.p_slower[row] == pytest.approx(welch.pvalue) and test.df[row] == pytest.approx(welch.df)
        assert test.p_faster[row] == pytest.approx(1 - welch.pvalue)
        assert test.se[row] == pytest.approx(math.sqrt(np.var(x, ddof=1) / 4 + np.var(y, ddof=1) / 3))
        assert (test.low[row], test.high[row]) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
        assert test.ratio[row] == pytest.approx(math.exp(y.mean() - x.mean()))


def test_a_calibration_is_pooled_into_each_row():
    base = np.array([[0.100, 0.104, 0.098], [0.200, 0.230, 0.190]])
    cur = np.array([[0.110, 0.115, 0.108, 0.111], [0.200, 0.199, 0.240, 0.205]])
    noise = stats.ProcessNoise(0.02**2, 10)
    test = stats.log_ratio_test(base, cur, noise=noise)
    assert test.noise_df == 10 and test.method == stats.RATIO_TEST_CALIBRATED
    for row in range(2):
        x, y = np.log(base[row]), np.log(cur[row])
        vb = (10 * 0.02**2 + 2 * np.var(x, ddof=1)) / 12  # the calibration's 10 df, and the side's own 2
        vc = (10 * 0.02**2 + 3 * np.var(y, ddof=1)) / 13
        se = math.sqrt(vb / 3 + vc / 4)
        # Welch-Satterthwaite over the three independent estimates: the calibration's share of se^2
        # (10 df, once), and each side's own (2 and 3 df).
        shared = 10 * 0.02**2 * (1 / (3 * 12) + 1 / (4 * 13))
        own_b, own_c = 2 * np.var(x, ddof=1) / (3 * 12), 3 * np.var(y, ddof=1) / (4 * 13)
        assert se**2 == pytest.approx(shared + own_b + own_c)
        df = se**4 / (shared**2 / 10 + own_b**2 / 2 + own_c**2 / 3)
        assert test.se[row] == pytest.approx(se) and test.df[row] == pytest.approx(df)
        assert test.p_slower[row] == pytest.approx(sps.t.sf((y.mean() - x.mean()) / se, df))


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # SciPy, on the exact rows
def test_exact_rows_in_a_stack_keep_their_exact_answers():
    import warnings

    base = np.array([[0.1, 0.1], [0.2, 0.2], [0.100, 0.104]])
    cur = np.array([[0.2, 0.2], [0.1, 0.1], [0.110, 0.116]])
    test = stats.log_ratio_test(base, cur)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0/0 warnings where every row is exact
        same = stats.log_ratio_test([0.1, 0.1, 0.1], [0.1, 0.1, 0.1])
    assert test.p_slower[:2].tolist() == [0.0, 1.0] and test.p_faster[:2].tolist() == [1.0, 0.0]
    assert test.df[:2].tolist() == [2.0, 2.0] and same.df == 4.0
    welch = sps.ttest_ind(np.log(cur[2]), np.log(base[2]), equal_var=False, alternative="greater")
    assert test.p_slower[2] == pytest.approx(welch.pvalue) and test.p_faster[2] == pytest.approx(1 - welch.pvalue)


@pytest.mark.parametrize(("base", "cur", "confidence", "message"), [
    ([0.1, 0.1], [0.1, 0.1], 0.0, "confidence must be between 0 and 1"),
    ([0.1, 0.1], [0.1, 0.1], 1.0, "confidence must be between 0 and 1"),
    ([0.1, 0.1], [0.1, 0.1], 1.5, "confidence must be between 0 and 1"),
    ([0.1], [0.1, 0.1], 0.95, "each side needs at least 2 processes"),
    ([0.1, 0.1], [0.1, 0.0], 0.95, "process medians must be positive and finite"),
    ([0.1, None], [0.1, 0.1], 0.95, "process medians must be positive and finite"),
    ([0.1, 0.1], [0.1, None], 0.95, "process medians must be positive and finite"),
])
def test_the_ratio_test_refuses_what_it_cannot_test(base, cur, confidence, message):
    with pytest.raises(ValueError, match=f"^{message}$"), np.errstate(divide="ignore"):
        stats.log_ratio_test(base, cur, confidence)


def test_an_interval_excludes_only_values_outside_it():
    interval = stats.Interval(0.5, 0.0, 1.0, 2)
    assert not interval.excludes(0.0) and not interval.excludes(1.0) and not interval.excludes(0.5)
    assert interval.excludes(-0.1) and interval.excludes(1.1)
    assert not stats.Interval(0.5, None, None, 1).excludes(5.0)


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # SciPy, on the constant side
def test_welch_and_paired_intervals_are_scipys_with_their_counts():
    a, b = [0.80, 0.82, 0.79], [0.78, 0.80]
    welch = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.9)
    assert stats.welch_difference(a, b, 0.9) == stats.Interval(pytest.approx(0.04 / 3), pytest.approx(welch.low),
                                                               pytest.approx(welch.high), 5, 0.9)
    # One value on a side: 0.8 - 0.79, no interval.
    assert stats.welch_difference([0.8], b, 0.9) == stats.Interval(pytest.approx(0.01), None, None, 3, 0.9)
    assert stats.welch_difference([0.8, 0.8], [0.7, 0.7], 0.9) == stats.Interval(
        pytest.approx(0.1), pytest.approx(0.1), pytest.approx(0.1), 4, 0.9)
    one_constant = stats.welch_difference([0.8, 0.8], [0.7, 0.75], 0.9)  # one side constant: still an interval
    ci = sps.ttest_ind([0.8, 0.8], [0.7, 0.75], equal_var=False).confidence_interval(0.9)
    assert (one_constant.low, one_constant.high) == pytest.approx((ci.low, ci.high))
    x, y = [0.80, 0.82, 0.79, 0.81], [0.78, 0.81, 0.78, 0.80]
    paired = sps.ttest_rel(x, y).confidence_interval(0.9)
    assert stats.paired_difference(x, y, 0.9) == stats.Interval(pytest.approx(0.0125), pytest.approx(paired.low),
                                                                pytest.approx(paired.high), 4, 0.9)
    assert stats.paired_difference([0.8], [0.7], 0.9) == stats.Interval(pytest.approx(0.1), None, None, 1, 0.9)
    assert stats.paired_difference([0.8, 0.9], [0.7, 0.8], 0.9) == stats.Interval(
        pytest.approx(0.1), pytest.approx(0.1), pytest.approx(0.1), 2, 0.9)


def test_spending_is_capped_at_the_whole_design():
    assert stats.alpha_spent(1.5) == pytest.approx(0.05) and stats.alpha_spent(1.5, spending="pocock") == pytest.approx(
        0.05)
    with pytest.raises(ValueError, match=r"^unknown spending function 'x'; one of obrien-fleming, pocock$"):
        stats.alpha_spent(0.5, spending="x")


def batch_interval(times, confidence=0.95, pilot=None):
    """The batch-medians interval written out: 5 consecutive batches, Student t on 4 df, Stein's floor."""
    medians = [np.median(b) for b in np.array_split(np.asarray(times), 5)]
    critical = sps.t.ppf(0.5 + confidence / 2, 4)
    half = critical * np.std(medians, ddof=1) / math.sqrt(5)
    if pilot is not None:
        first = [np.median(b) for b in np.array_split(np.asarray(times[:pilot]), 5)]
        half = max(half, critical * np.std(first, ddof=1) / math.sqrt(5) * math.sqrt(pilot / len(times)))
    return np.mean(medians) - half, np.mean(medians) + half


def test_the_pilot_counts_from_20_rounds_on():
    rng = np.random.default_rng(3)
    times = list(np.concatenate([0.1 * np.exp(0.1 * rng.standard_normal(20)), np.full(180, 0.1)]))
    assert stats.rounds_median_interval(times, pilot=20) == pytest.approx(batch_interval(times, pilot=20))
    assert stats.rounds_median_interval(times, pilot=10) == pytest.approx(batch_interval(times))  # too few to plan
    assert stats.median_half_width(times, 0.9, pilot=20) == pytest.approx(
        (batch_interval(times, 0.9, 20)[1] - batch_interval(times, 0.9, 20)[0]) / 2 / 0.1)
    assert stats.median_half_width(list(np.linspace(-1, 1, 21))) is None  # a median of 0: no relative width
    assert stats.median_half_width(list(np.linspace(-2, -1, 21))) is None


def test_rounds_needed_from_a_pilot_of_exactly_20():
    rng = np.random.default_rng(4)
    pilot = list(0.1 * np.exp(0.05 * rng.standard_normal(20)))
    low, high = batch_interval(pilot)
    needed = 20 * ((high - low) / 2 / (0.01 * np.median(pilot))) ** 2
    assert stats.rounds_needed(pilot, 0.01) == max(20, math.ceil(needed))
    with pytest.raises(ValueError, match=r"^a pilot needs at least 20 rounds$"):
        stats.rounds_needed(pilot[:19], 0.01)


def test_query_counts_at_the_edges_of_their_search():
    import warnings

    assert stats.queries_for_percentile() == stats.QuerySizing(0.99, 0.005, 0.95, 1600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # never a division by zero queries
        found = stats.queries_for_percentile(0.9, 0.13, 0.95)
    assert found == stats.QuerySizing(0.9, 0.13, 0.95, 36)
    # The fewest counts that fit, checked against quantile_test's own interval (its ranks, as levels).
    def fits(n, p, margin, confidence):
        ci = sps.quantile_test(np.arange(1, n + 1, dtype=float), q=1, p=p).confidence_interval(confidence)
        return (np.isfinite(ci.low) and np.isfinite(ci.high)
                and p - ci.low / n <= margin + 1e-12 and ci.high / n - p <= margin + 1e-12)

    for p, margin, confidence, n in [(0.5, 0.085, 0.5, 31), (0.5, 0.09, 0.5, 29), (0.5, 0.17, 0.8, 21),
                                     (0.9, 0.13, 0.95, 36), (0.05, 0.03, 0.5, 50)]:
        assert fits(n, p, margin, confidence) and not fits(n - 1, p, margin, confidence)
        assert stats.queries_for_percentile(p, margin, confidence).queries == n
    assert stats.queries_for_percentile(0.5, 0.085, 0.5, limit=31).queries == 31
    with pytest.raises(ValueError, match=r"^no query count up to 100 puts the p99 interval within ±0.0001$"):
        stats.queries_for_percentile(0.99, 0.0001, limit=100)


@pytest.mark.parametrize("bad", [dict(percentile=0), dict(percentile=1), dict(percentile=1.5), dict(margin=0),
                                 dict(margin=1), dict(margin=1.5), dict(confidence=0), dict(confidence=1),
                                 dict(confidence=1.5)])
def test_query_counts_refuse_levels_outside_0_and_1(bad):
    with pytest.raises(ValueError, match=r"^percentile, margin and confidence must be between 0 and 1$"):
        stats.queries_for_percentile(**{"percentile": 0.99, "margin": 0.005, "confidence": 0.95, **bad})


def test_process_spread_variation_and_noise_by_hand():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stats.process_spread([0.0, 1.0]) == math.inf
    assert stats.process_spread([-1.0, 1.0]) == math.inf
    assert stats.process_variation([1.0, 2.0, 3.0]) == pytest.approx(1.0 / 2.0)  # sd 1 (ddof 1), mean 2
    assert stats.process_noise([1.0, math.e]) == stats.ProcessNoise(pytest.approx(0.5), 1)  # logs 0 and 1
    assert stats.process_noise([1.0, math.e, math.e**2]) == stats.ProcessNoise(pytest.approx(1.0), 2)
    assert stats.process_noise([1.0]) is None


def test_holm_of_nothing_is_nothing():
    assert stats.holm([]).size == 0
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_detectable_and_planned_slowdowns_against_the_noncentral_t():
    from scipy.optimize import brentq
    from statsmodels.stats.power import TTestIndPower

    # A comparison of 3 against 8 processes: the effect at which the test's power (the noncentral t written
    # out) plus the chance that the estimate clears the threshold, minus 1, is 80%.
    test = stats.log_ratio_test([0.100, 0.104, 0.098], [0.101, 0.099, 0.102, 0.100, 0.103, 0.097, 0.100, 0.101])
    se = test.se * math.sqrt(test.df / sps.chi2.median(test.df))  # median-unbiased
    critical = sps.t.isf(0.01, test.df)
    unit = se / math.sqrt(1 / 3 + 1 / 8)

    def both(d):
        return (sps.nct.sf(critical, test.df, d * math.sqrt(3 * 8 / 11))
                + sps.norm.sf((math.log1p(0.02) - d * unit) / se) - 1)

    d = brentq(lambda d: both(d) - 0.8, 0, 100, xtol=1e-12)
    assert stats.detectable_slowdown(test, 0.01, threshold=0.02) == pytest.approx(math.expm1(d * unit), rel=1e-3)
    noise = stats.ProcessNoise(0.02**2, 6)
    se, df = 0.02 * math.sqrt(2 / 4), 2.0 * (6 + 3) ** 2 / (2 * 6 + 3)
    power = TTestIndPower().power(math.log1p(0.05) / 0.02, nobs1=4, alpha=0.01, ratio=1.0, df=df,
                                  alternative="larger") + sps.norm.sf((math.log1p(0.01) - math.log1p(0.05)) / se) - 1
    assert stats.planned_power(noise, 4, 0.05, 0.01, threshold=0.01) == pytest.approx(power)
    quiet = stats.ProcessNoise(0.0, 5)
    assert stats.planned_power(quiet, 3, 0.05, 0.01, 0.03) == 1.0  # no noise: past the threshold is flagged
    assert stats.planned_power(quiet, 3, 0.03, 0.01, 0.03) == 0.0  # at it, never


def test_modes_are_described_side_by_side():
    modes = stats.Modes(0.001, 0.36, ((2, 0.33, 4, 0.4), (3, 0.33, 0, None)))
    assert modes.describe() == ("bimodal (dip test p = 0.001): baseline 2 of 6 processes near 0.33 ms, 4 near 0.4 ms; "
                                "current all 3 near 0.33 ms")
    assert modes.describe(names=("",), scale=1e3) == ("bimodal (dip test p = 0.001): 2 of 6 processes near 330 ms, "
                                                      "4 near 400 ms")


def test_a_lazy_module_is_imported_at_its_first_use():
    assert stats._Lazy("math").sqrt(16.0) == 4.0


def test_order_statistic_intervals_by_hand():
    times = [float(v) for v in range(20, 0, -1)]  # 1..20, in any order
    # binom(20, 0.5): ppf(0.025) = 6 and isf(0.025) = 14, as 0-based ranks 5 and 14: the 6th and 15th values.
    assert stats.quantile_interval(times) == (6.0, 15.0)
    assert stats.quantile_interval(times, p=0.5, confidence=0.5) == (8.0, 13.0)  # ppf(0.25) = 8, isf(0.25) = 12
    assert stats.quantile_interval([1.0, 2.0, 3.0]) == (None, None)  # 3 values give no 95% interval
    low, high = stats.quantile_interval(times, p=0.25)
    assert (low, high) == (sps.binom.ppf(0.025, 20, 0.25), sps.binom.isf(0.025, 20, 0.25) + 1)


def test_the_tail_interval_by_hand():
    from arch.covariance.kernel import Bartlett

    rng = np.random.default_rng(8)
    times = np.exp(0.1 * rng.standard_normal(400))
    ordered = np.sort(times)
    for p, confidence in ((0.9, 0.95), (0.5, 0.8)):
        indicator = (times <= np.quantile(times, p)).astype(float)
        long_run = float(Bartlett(indicator).cov.long_run[0, 0])
        half = sps.t.ppf(0.5 + confidence / 2, 399) * math.sqrt(long_run / 400)
        expected = ordered[math.floor(400 * (p - half))], ordered[math.ceil(400 * (p + half))]
        assert stats.tail_interval(list(times), p, confidence) == pytest.approx(expected)
    # Equal times: the indicator has no spread and the independent case's p(1 - p) is the variance.
    half = sps.t.ppf(0.975, 99) * math.sqrt(0.5 * 0.5 / 100)
    assert math.floor(100 * (0.5 - half)) == 40 and math.ceil(100 * (0.5 + half)) == 60
    assert stats.tail_interval([2.0] * 100, 0.5) == (2.0, 2.0)
    assert stats.tail_interval(list(times[:50]), 0.99) == (pytest.approx(ordered_of(times[:50], 0.99)), None)


def ordered_of(times, p):
    from arch.covariance.kernel import Bartlett

    x = np.sort(times)
    indicator = (np.asarray(times) <= np.quantile(times, p)).astype(float)
    long_run = p * (1 - p)
    if np.ptp(indicator) > 0:
        long_run = float(Bartlett(indicator).cov.long_run[0, 0])
    half = sps.t.ppf(0.975, len(x) - 1) * math.sqrt(long_run / len(x))
    return x[math.floor(len(x) * (p - half))]


def test_planned_slowdown_and_power_without_a_threshold():
    from scipy.optimize import brentq

    noise = stats.ProcessNoise(0.02**2, 6)
    df = 2.0 * (6 + 3) ** 2 / (2 * 6 + 3)  # Welch-Satterthwaite: each side's own 3 df, the calibration's 6 once
    critical = sps.t.isf(0.01, df)
    d = brentq(lambda d: sps.nct.sf(critical, df, d * math.sqrt(2)) - 0.8, 0, 100, xtol=1e-12)
    assert stats.planned_slowdown(noise, 4, 0.01) == pytest.approx(math.expm1(d * 0.02), rel=1e-3)
    power = sps.nct.sf(critical, df, math.log1p(0.05) / 0.02 * math.sqrt(2))
    assert stats.planned_power(noise, 4, 0.05, 0.01) == pytest.approx(power, rel=1e-6)


def test_the_dip_test_runs_where_every_side_visits_both_modes():
    import diptest

    dip = lambda *sides: diptest.diptest(np.sort(np.log(np.concatenate(sides))))[1]
    # The side that owns the value just below the largest gap has one process in the fast mode: both modes.
    baseline, current = [333.0, 400.0, 401.0, 402.0], [330.0, 331.0, 332.0, 403.0, 404.0, 405.0]
    p = stats.bimodality_p([baseline, current])
    assert type(p) is float and p == pytest.approx(dip(baseline, current))
    eight = ([330.0, 331.0, 400.0, 401.0], [332.0, 333.0, 402.0, 403.0])  # exactly the fewest processes tested
    assert stats.bimodality_p(list(eight)) == pytest.approx(dip(*eight))
    assert math.isnan(stats.bimodality_p(list(eight), min_processes=9))
    slowdown = ([330.0, 331.0, 332.0, 333.0], [400.0, 401.0, 402.0, 403.0])  # the sides are the two groups
    assert math.isnan(stats.bimodality_p(list(slowdown)))
    # Stacks: each row on its own.
    stacked = stats.bimodality_p([np.array([eight[0], slowdown[0]]), np.array([eight[1], slowdown[1]])])
    assert stacked.shape == (2,) and stacked[0] == pytest.approx(dip(*eight)) and math.isnan(stacked[1])
    modes = [330.0] * 4 + [400.0] * 8
    assert stats.process_modes([modes], min_processes=13) is None and stats.process_modes([modes]) is not None


def test_two_process_medians_give_an_interval():
    logs = np.log([0.1, 0.12])
    low, high = sps.t.interval(0.9, 1, loc=logs.mean(), scale=np.std(logs, ddof=1) / math.sqrt(2))
    assert stats.process_interval([0.1, 0.12], 0.9) == stats.Interval(
        pytest.approx(math.exp(logs.mean())), pytest.approx(math.exp(low)), pytest.approx(math.exp(high)), 2, 0.9)


def test_the_tail_interval_at_its_index_edges():
    def by_hand(times, p, confidence=0.95):
        from arch.covariance.kernel import Bartlett

        x, n = np.asarray(times), len(times)
        indicator = (x <= np.quantile(x, p)).astype(float)
        long_run = float(Bartlett(indicator).cov.long_run[0, 0]) if np.ptp(indicator) > 0 else p * (1 - p)
        half = sps.t.ppf(0.5 + confidence / 2, n - 1) * math.sqrt(long_run / n)
        return math.floor(n * (p - half)), math.ceil(n * (p + half))

    twelve = np.random.default_rng(0).standard_normal(12)
    assert by_hand(twelve, 0.5) == (1, 11)  # the last time is the upper bound
    assert stats.tail_interval(list(twelve), 0.5) == (np.sort(twelve)[1], np.sort(twelve)[11])
    eight = np.random.default_rng(0).standard_normal(8)
    assert by_hand(eight, 0.5) == (0, 8)  # the first time is the lower bound; past the last there is none
    assert stats.tail_interval(list(eight), 0.5) == (np.sort(eight)[0], None)
    rng = np.random.default_rng(1)
    rng.standard_normal(8), rng.standard_normal(10)
    other = rng.standard_normal(12)
    assert by_hand(other, 0.8) == (8, 12) and stats.tail_interval(list(other), 0.8) == (np.sort(other)[8], None)
    odd = np.random.default_rng(0).standard_normal(11)  # the median is one of the times: it counts as at or below
    assert by_hand(odd, 0.5) == (3, 8)  # (2, 9) if it did not
    assert stats.tail_interval(list(odd), 0.5) == (np.sort(odd)[3], np.sort(odd)[8])
    # Every time at or below the 20th percentile: the indicator has no spread, the independent p(1 - p) is used.
    ties = [1.0, 1.5] + [2.0] * 18
    assert by_hand(ties, 0.2) == (0, 8) and stats.tail_interval(ties, 0.2) == (1.0, 2.0)
    times = list(np.exp(0.1 * np.random.default_rng(8).standard_normal(400)))
    assert stats.tail_interval(times) == stats.tail_interval(times, 0.99, 0.95) != stats.tail_interval(times, 0.9)
    assert stats.tail_interval(times[:50], 0.01)[0] is None
    # Two times: arch's bandwidth rule divides by zero; the independent variance is used, too wide for bounds.
    assert stats.tail_interval([1.0, 2.0], 0.5) == (None, None)


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # SciPy, on the exact row
def test_exact_and_library_rows_side_by_side():
    import warnings

    base = np.array([[0.1, 0.1], [0.100, 0.104]])
    cur = np.array([[0.1, 0.1], [0.110, 0.116]])
    test = stats.log_ratio_test(base, cur)
    assert (test.p_slower[0], test.p_faster[0]) == (1.0, 1.0)  # equal medians: no change either way
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a difference over a zero standard error divides by zero, silently
        slower = stats.log_ratio_test([0.1, 0.1], [0.2, 0.2])
    assert slower.p_slower == 0.0


def test_small_edges_of_the_seed_statistics():
    assert stats.mean_interval([0.8, 0.82]).low is not None  # two values give an interval
    assert stats.mlperf_time([1.0, 2.0, 3.0]) == stats.MlperfTime(2.0, 3, 0)
    with pytest.raises(ValueError, match=r"^paired samples need one value each per seed: 2 against 3$"):
        stats.equivalence([0.8, 0.8], [0.7, 0.7, 0.7], 0.01)
    a = np.array([0.80, 0.81, 0.79, 0.80])
    spread_below = stats.equivalence(a, a + np.array([0.01, -0.005, 0.02, 0.012]), 0.01)
    assert spread_below.interval.low < -0.01 < spread_below.interval.high < 0.01
    assert spread_below.verdict == stats.UNSETTLED  # not beyond: the interval reaches inside the margin
    modes = stats.Modes(0.001, 0.36, ((0, None, 3, 0.4),))
    assert modes.describe(names=("x",)) == "bimodal (dip test p = 0.001): x all 3 near 0.4 ms"
    found = stats.process_modes([[330.0 + 0.1 * i for i in range(4)] + [400.0 + 0.1 * i for i in range(8)]])
    assert found.boundary == pytest.approx(math.sqrt(330.3 * 400.0))  # the geometric middle of the widest gap
    assert found.sides == ((4, pytest.approx(330.15), 8, pytest.approx(400.35)),)


def test_the_dip_test_needs_every_side_on_both_sides_of_the_gap_row_by_row():
    import diptest

    dip = lambda *sides: diptest.diptest(np.sort(np.log(np.concatenate(sides))))[1]
    slowdown = ([330.0, 331.0, 332.0, 333.0], [400.0, 401.0, 402.0, 403.0])
    eight = ([330.0, 331.0, 400.0, 401.0], [332.0, 333.0, 402.0, 403.0])
    stacked = stats.bimodality_p([np.array([slowdown[0], eight[0]]), np.array([slowdown[1], eight[1]])])
    assert math.isnan(stacked[0]) and stacked[1] == pytest.approx(dip(*eight))
    above, across = [400.0, 401.0, 402.0, 403.0], [330.0, 331.0, 332.0, 404.0]  # one side never below the gap
    assert math.isnan(stats.bimodality_p([above, across]))
    below, spanning = [330.0, 331.0, 332.0, 333.0], [334.0, 335.0, 400.0, 401.0]  # one side never above it
    # Each row on its own: the other row's sides visit both modes, these rows' do not.
    for a, b in ((above, across), (below, spanning)):
        rows = stats.bimodality_p([np.array([a, eight[0]]), np.array([b, eight[1]])])
        assert math.isnan(rows[0]) and rows[1] == pytest.approx(dip(*eight))


def test_planned_power_past_a_threshold_the_noise_can_resolve():
    noise = stats.ProcessNoise(0.02**2, 6)
    se, df = 0.02 * math.sqrt(2 / 4), 2.0 * (6 + 3) ** 2 / (2 * 6 + 3)
    rejects = sps.nct.sf(sps.t.isf(0.01, df), df, math.log1p(0.08) / 0.02 * math.sqrt(2))
    clears = sps.norm.sf((math.log1p(0.05) - math.log1p(0.08)) / se)
    assert clears < 0.99  # the threshold, not only the test, limits here
    assert stats.planned_power(noise, 4, 0.08, 0.01, threshold=0.05) == pytest.approx(rejects + clears - 1, rel=1e-6)
    # Far below the threshold the bound is 0, never negative.
    assert stats.planned_power(noise, 4, 0.01, 0.01, threshold=0.20) == 0.0


def test_the_paired_test_is_scipys_ttest_rel_on_log_medians():
    # Five blocks: the machine drifts from block to block, and each current process is 3-4% slower than
    # the baseline process it ran beside.
    base = [0.100, 0.104, 0.098, 0.101, 0.099]
    cur = [0.103, 0.108, 0.100, 0.105, 0.102]
    test = stats.paired_log_ratio_test(base, cur)
    x, y = np.log(base), np.log(cur)
    slower = sps.ttest_rel(y, x, alternative="greater")
    assert test.p_slower == pytest.approx(slower.pvalue) and test.p_faster == pytest.approx(1 - slower.pvalue)
    low, high = sps.ttest_rel(y, x).confidence_interval(0.95)
    assert (test.low, test.high) == pytest.approx((math.exp(low), math.exp(high)))
    assert test.ratio == pytest.approx(math.exp(np.mean(y - x))) and test.df == 4 and test.processes == (5, 5)
    assert test.paired and test.method == stats.RATIO_TEST_PAIRED
    # The drift both processes of a block share cancels; Welch, on the same medians, counts it as noise.
    assert test.p_slower < 0.001 and stats.log_ratio_test(base, cur).p_slower > 0.01
    # Every block the same difference: exact either way.
    assert stats.paired_log_ratio_test([1.0, 1.0], [1.1, 1.1]).p_slower == 0.0
    assert stats.paired_log_ratio_test([1.0, 1.0], [1.0, 1.0]).p_slower == 1.0
    with pytest.raises(ValueError, match=r"^a paired test needs one baseline and one current process per block$"):
        stats.paired_log_ratio_test([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"^a paired test needs at least 2 blocks$"):
        stats.paired_log_ratio_test([1.0], [1.0])


def test_the_paired_detectable_slowdown_is_the_one_sample_t_power_point():
    from scipy.optimize import brentq
    from statsmodels.stats.power import TTestPower

    base = [0.100, 0.110, 0.094, 0.108, 0.097, 0.109, 0.095]
    cur = [0.101, 0.112, 0.094, 0.110, 0.099, 0.110, 0.096]
    test = stats.paired_log_ratio_test(base, cur)
    se = test.se * math.sqrt(test.df / sps.chi2.median(test.df))  # median-unbiased, as for Welch
    alpha = 0.05 / 10
    sd = se * math.sqrt(7)  # of the per-block differences

    def both(d):  # the one-sample t test over 7 blocks rejects, and the estimate clears 3%
        return (TTestPower().power(d, nobs=7, alpha=alpha, alternative="larger")
                + sps.norm.sf((math.log1p(0.03) - d * sd) / se) - 1)

    d = brentq(lambda d: both(d) - 0.8, 0, 100, xtol=1e-12)
    assert stats.detectable_slowdown(test, alpha, threshold=0.03) == pytest.approx(math.expm1(d * sd), rel=1e-3)
    # Without a threshold it is the test's own 80% point.
    alone = TTestPower().solve_power(nobs=7, alpha=alpha, power=0.8, alternative="larger")
    assert stats.detectable_slowdown(test, alpha) == pytest.approx(math.expm1(alone * sd), rel=1e-3)


@pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")  # a median of 0, on purpose
def test_the_paired_test_answers_for_stacks_exact_blocks_and_bad_input():
    # Two lines of four blocks each, as the simulations pass them; the second line's blocks all differ by
    # exactly 10% (a zero sd), the first's do not.
    base = np.array([[0.100, 0.104, 0.098, 0.101], [1.0, 1.0, 1.0, 1.0]])
    cur = np.array([[0.103, 0.105, 0.101, 0.102], [1.1, 1.1, 1.1, 1.1]])
    test = stats.paired_log_ratio_test(base, cur, confidence=0.90)
    first = sps.ttest_rel(np.log(cur[0]), np.log(base[0]), alternative="greater")
    assert isinstance(test.p_slower, np.ndarray) and test.p_slower.shape == (2,)
    assert test.p_slower == pytest.approx([first.pvalue, 0.0])
    assert test.p_faster == pytest.approx([1 - first.pvalue, 1.0])
    low, high = sps.ttest_rel(np.log(cur[0]), np.log(base[0])).confidence_interval(0.90)
    assert (test.low[0], test.high[0]) == pytest.approx((math.exp(low), math.exp(high)))
    assert test.se[1] == 0.0 and test.low[1] == test.high[1] == pytest.approx(1.1)
    assert list(test.df) == [3.0, 3.0] and test.confidence == 0.90
    one = stats.paired_log_ratio_test([1.0, 2.0], [1.0, 2.0])
    assert isinstance(one.p_slower, float) and (one.p_slower, one.p_faster) == (1.0, 1.0)  # no change, either way
    faster = stats.paired_log_ratio_test([1.1, 1.1], [1.0, 1.0])
    assert (faster.p_slower, faster.p_faster) == (1.0, 0.0)
    for confidence in (0.0, 1.0):
        with pytest.raises(ValueError, match=r"^confidence must be between 0 and 1$"):
            stats.paired_log_ratio_test([1.0, 2.0], [1.0, 2.0], confidence)
    for base, cur in (([0.0, 1.0], [1.0, 1.0]), ([1.0, 1.0], [1.0, np.inf])):
        with pytest.raises(ValueError, match=r"^process medians must be positive and finite$"):
            stats.paired_log_ratio_test(base, cur)


def test_the_planned_slowdown_is_welchs_power_point():
    from statsmodels.stats.power import TTestIndPower

    # 5 processes a side at a calibrated 2% (df 10): Welch's power, solved for the effect.
    noise = stats.ProcessNoise(0.02**2, 10)
    se, df = 0.02 * math.sqrt(2 / 5), 2.0 * (10 + 4) ** 2 / (2 * 10 + 4)
    d = TTestIndPower().solve_power(nobs1=5, alpha=0.005, power=0.8, ratio=1.0, alternative="larger")
    # solve_power's df is nobs1 + nobs2 - 2; with the pooled df the figure is a little smaller.
    found = stats.planned_slowdown(noise, 5, 0.005)
    assert found < math.expm1(d * 0.02)
    level = 0.005
    critical = sps.t.isf(level, df)
    power = sps.nct.sf(critical, df, math.log1p(found) / se)
    assert power == pytest.approx(0.80, abs=1e-3)
