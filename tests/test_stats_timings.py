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
    assert calibrated.df > 80 and calibrated.high - calibrated.low < test.high - test.low
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
    runs = 1500
    calibrations = lognormal_medians(rng, (runs, 12), 0.02)  # an A/A calibration of 12 processes per run
    rejected = 0
    for calibration, base, cur in zip(calibrations, lognormal_medians(rng, (runs, 3), 0.02),
                                      lognormal_medians(rng, (runs, 3), 0.02), strict=True):
        rejected += stats.log_ratio_test(base, cur, noise=stats.process_noise(calibration)).p_slower < 0.05
    assert 0.035 <= rejected / runs <= 0.062


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
