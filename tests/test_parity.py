"""Does accuracy hold across backends: seeds, the statistics (bench.stats) with seeded simulations of their
error rates, power and coverage, parity verdicts, the report's parity section, compare's seed-spread rule,
progress lines, and one tiny multi-seed `bench run`."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from bench import compare as cmp
from bench import parity, plots, report, results, sequential, stats, tables, training
from bench.backends import selected_backend
from bench.settings import AUTO_SEEDS, from_options, seed_list
from tests.conftest import run_cli
from tests.resultfiles import make_result, seeded_run, write_result

# Measured accuracies, quick profile (5,000 reviews, 1 epoch, seeds 0 to 4, 2-core AMD EPYC).
TF = [0.817, 0.801, 0.729, 0.780, 0.793]
JAX = [0.802, 0.796, 0.825, 0.795, 0.781]
TORCH = [0.823, 0.796, 0.796, 0.795, 0.783]


# ------------------------------------------------------------------------------------------ stats

@given(st.lists(st.floats(min_value=0, max_value=1), min_size=2, max_size=30))
def test_mean_interval_holds_the_mean_and_widens_with_confidence(values):
    narrow, wide = stats.mean_interval(values, 0.95), stats.mean_interval(values, 0.99)
    assert narrow.low <= narrow.estimate <= narrow.high
    assert wide.low <= narrow.low + 1e-12 and wide.high >= narrow.high - 1e-12


def test_mean_interval_edges():
    assert stats.mean_interval([0.8]).low is None
    flat = stats.mean_interval([0.8, 0.8, 0.8])
    assert (flat.low, flat.high) == (0.8, 0.8)
    tf = stats.mean_interval(TF)
    assert tf.estimate == pytest.approx(0.784) and tf.high - tf.low == pytest.approx(
        2 * sps.t.ppf(0.975, 4) * np.std(TF, ddof=1) / np.sqrt(5))
    with pytest.raises(ValueError):
        stats.mean_interval([])


def test_welch_difference_is_antisymmetric_and_holds_the_difference():
    ab, ba = stats.welch_difference(JAX, TF), stats.welch_difference(TF, JAX)
    assert ab.estimate == pytest.approx(np.mean(JAX) - np.mean(TF)) and ab.low == pytest.approx(-ba.high)
    assert ab.low < ab.estimate < ab.high and not ab.excludes(0.0)
    assert stats.welch_difference([0.9, 0.91, 0.92], [0.7, 0.71, 0.72]).excludes(0.0)
    assert stats.welch_difference([0.9], TF).low is None
    # Welch-Satterthwaite, written out: unequal variances, not the pooled two-sample interval.
    a, b = [0.80, 0.81, 0.79, 0.80], [0.70, 0.76, 0.64, 0.82, 0.58, 0.66]
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 6
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 5)
    half = sps.t.ppf(0.975, df) * np.sqrt(va + vb)
    welch = stats.welch_difference(a, b)
    assert (welch.low, welch.high) == pytest.approx((np.mean(a) - np.mean(b) - half, np.mean(a) - np.mean(b) + half))


# Seeds 0-7 of two backends that move together from seed to seed (as JAX and TensorFlow do, r = 0.86).
BASE = np.array([0.800, 0.830, 0.780, 0.810, 0.790, 0.820, 0.805, 0.840])
NOISE = np.array([0.002, -0.003, 0.001, 0.000, -0.002, 0.003, -0.001, 0.0005])


def test_paired_difference_is_the_interval_of_the_per_seed_differences():
    a, b = BASE + NOISE, BASE
    d = a - b
    half = sps.t.ppf(0.975, 7) * np.std(d, ddof=1) / np.sqrt(8)
    paired = stats.paired_difference(a, b)
    assert paired.estimate == pytest.approx(np.mean(d)) and paired.n == 8
    assert (paired.low, paired.high) == pytest.approx((np.mean(d) - half, np.mean(d) + half))
    welch = stats.welch_difference(a, b)
    assert paired.high - paired.low < (welch.high - welch.low) / 10  # the pairing is worth it here
    assert stats.paired_difference([0.8], [0.7]).low is None
    assert stats.paired_difference([0.8, 0.9], [0.7, 0.8]) == stats.Interval(pytest.approx(0.1), pytest.approx(0.1),
                                                                              pytest.approx(0.1), 2)
    with pytest.raises(ValueError, match="one value each per seed"):
        stats.paired_difference([0.8, 0.9], [0.7])


def test_correlation_is_pearsons():
    assert stats.correlation(BASE + NOISE, BASE) == pytest.approx(np.corrcoef(BASE + NOISE, BASE)[0, 1])
    assert stats.correlation(JAX, TF) < 0  # these five seeds happen to move apart
    assert stats.correlation([0.8, 0.8, 0.8], [0.7, 0.8, 0.9]) is None and stats.correlation([1, 2], [2, 1]) is None


def test_paired_tost_is_statsmodels_ttost_paired_and_welch_is_ttost_ind():
    from statsmodels.stats.weightstats import ttost_ind, ttost_paired

    a, b = BASE + NOISE + 0.004, BASE
    assert stats.equivalence(a, b, 0.01).p_tost == pytest.approx(ttost_paired(a, b, -0.01, 0.01)[0])
    assert stats.equivalence(JAX, TF, 0.03, paired=False).p_tost == pytest.approx(
        ttost_ind(JAX, TF, -0.03, 0.03, usevar="unequal")[0])
    assert stats.equivalence(a, b, 0.01).p_equal == pytest.approx(sps.ttest_rel(a, b).pvalue)


def test_the_four_verdicts_and_their_intervals():
    a = BASE + NOISE
    same = stats.equivalence(a, BASE, 0.01)
    assert same.verdict == stats.EQUIVALENT and same.paired and same.n == 8
    assert same.interval.confidence == pytest.approx(0.90) and same.zero_interval.confidence == pytest.approx(0.95)
    assert -0.01 < same.interval.low < same.interval.high < 0.01 and not same.zero_interval.excludes(0.0)
    assert same.correlation > 0.99 and same.unpaired_seeds > 100
    within = stats.equivalence(a + 0.004, BASE, 0.01)  # real, 0.4 pt, inside ±1 pt
    assert within.verdict == stats.DIFFERENT_WITHIN and within.zero_interval.excludes(0.0)
    beyond = stats.equivalence(a + 0.03, BASE, 0.01)
    assert beyond.verdict == stats.DIFFERENT_BEYOND and beyond.interval.low > 0.01
    below = stats.equivalence(BASE, a + 0.03, 0.01)  # the sign is a - b
    assert below.verdict == stats.DIFFERENT_BEYOND and below.interval.high < -0.01 and below.difference < 0
    unsure = stats.equivalence(JAX, TF, 0.01)
    assert unsure.verdict == stats.UNSETTLED and not unsure.settled and unsure.reason == ""
    assert unsure.difference == pytest.approx(np.mean(JAX) - np.mean(TF))
    one = stats.equivalence([0.8], [0.7], 0.01)
    assert one.verdict == stats.UNSETTLED and one.interval.low is None and "2 seeds in common" in one.reason
    assert stats.equivalence([1, 1], [1, 1], 0.5).verdict == stats.EQUIVALENT
    assert stats.equivalence([1.2, 1.1], [1, 0.9], 0.5).verdict == stats.DIFFERENT_WITHIN
    assert stats.equivalence([2, 3], [1, 2], 0.5).verdict == stats.DIFFERENT_BEYOND
    assert stats.equivalence([2, 2, 2], [1, 1], 0.5, paired=False).verdict == stats.DIFFERENT_BEYOND
    assert stats.equivalence([1.5, 1.5], [1, 1], 0.5).verdict == stats.UNSETTLED  # exactly at the margin
    rounded = stats.equivalence([0.9, 0.8], [0.8, 0.7], 0.5)  # 0.1 and 0.09999999999999998: the same difference
    assert rounded.verdict == stats.DIFFERENT_WITHIN and rounded.reason == "every seed gave the same difference"
    assert rounded.p_tost is None and rounded.sd == 0.0


def test_different_needs_its_own_test_not_just_a_tost_failure():
    # A difference of 0.5 pt inside a 1 pt margin, seeds moving apart: no verdict says "beyond".
    rng = np.random.default_rng(7)
    a = rng.normal(0.80, 0.016, 5)
    b = a - 0.005 + rng.normal(0, 0.012, 5)
    test = stats.equivalence(a, b, 0.01)
    assert test.verdict in (stats.UNSETTLED, stats.EQUIVALENT, stats.DIFFERENT_WITHIN)


def test_levels_at_zero_spend_nothing():
    nothing = stats.Levels(margin=0.0, zero=0.0, look="look 1 of 5, O'Brien-Fleming spending")
    test = stats.equivalence(BASE + NOISE + 0.03, BASE, 0.01, nothing)
    assert test.verdict == stats.UNSETTLED and test.interval.low == -np.inf and nothing.sequential


def test_mlperf_drops_the_fastest_and_slowest():
    assert stats.trimmed_mean_mlperf([5.0, 1.0, 3.0, 2.0, 4.0]) == 3.0
    assert stats.trimmed_mean_mlperf([10.0, 1.0, 2.0, 3.0]) == 2.5
    assert stats.trimmed_mean_mlperf(list(range(49))) == pytest.approx(24.0)  # one cut each end, not zero
    assert stats.trimmed_mean_mlperf([1.0, 2.0]) is None


def test_mlperf_counts_an_unreached_seed_as_the_slowest_and_two_as_invalid():
    full = stats.mlperf_time([50.0, 10.0, 30.0, 20.0, 40.0])
    assert full.score == 30.0 and full.unreached == 0 and not full.invalid
    one = stats.mlperf_time([50.0, 10.0, None, 20.0, 40.0])
    assert one.score == pytest.approx((20 + 40 + 50) / 3) and one.unreached == 1 and not one.invalid
    # Dropping the unreached seed instead would have scored the lucky four: (20 + 40) / 2.
    two = stats.mlperf_time([50.0, None, None, 20.0, 40.0])
    assert two.score is None and two.invalid and two.reason == (
        "invalid: 2 of 5 seeds never reached the target (MLPerf allows one)")
    assert stats.mlperf_time([1.0, 2.0]).reason == "needs 3 seeds or more"


# -------------------------------------------------------------------------------------- planning

def test_seeds_are_planned_from_a_stated_sd_as_the_audit_found():
    # 80% TOST power at a true difference of 0, margin 1 pt, SD 1.6 pt per backend: Welch needs 45 seeds;
    # paired, 24 at r = 0.5, 15 at r = 0.7 and 8 at r = 0.86 (paired SD = 1.6 * sqrt(2 (1 - r))).
    assert stats.seeds_for_equivalence(0.016, 0.01, paired=False) == 45
    paired = [stats.seeds_for_equivalence(0.016 * np.sqrt(2 * (1 - r)), 0.01) for r in (0.5, 0.7, 0.86)]
    assert paired == [24, 15, 8]


def test_planned_seeds_are_the_fewest_with_enough_power():
    n = stats.seeds_for_equivalence(0.01, 0.01, difference=0.002)
    assert stats.tost_power(n, 0.01, 0.01, 0.002) >= 0.8 > stats.tost_power(n - 1, 0.01, 0.01, 0.002)
    assert stats.seeds_for_equivalence(0.02, 0.01, difference=0.002) > n  # more spread, more seeds
    assert stats.seeds_for_equivalence(0.01, 0.01, power=0.9) > stats.seeds_for_equivalence(0.01, 0.01)
    assert stats.seeds_for_equivalence(0.01, 0.01, alpha=0.01) > stats.seeds_for_equivalence(0.01, 0.01)
    assert stats.seeds_for_equivalence(0.01, 0.01, difference=0.01) is None  # at the margin: never
    assert stats.seeds_for_equivalence(1.0, 0.001) is None  # more than MAX_SEEDS_NEEDED


def test_sd_upper_bound_is_the_chi_square_bound():
    assert stats.sd_upper_bound(1.0, 5) == pytest.approx(2.3724, abs=1e-4)  # sqrt(4 / chi2.ppf(0.05, 4))
    assert stats.sd_upper_bound(1.0, 50) < stats.sd_upper_bound(1.0, 5)


# ------------------------------------------------------------------------------------ simulations
# Seeded simulations of the statistics as parity uses them: rows of seeds from two backends with SD
# 1.6 points each and r = 0.86 between them (the audit's measured numbers), judged by ``stats.judge``
# (the verdict code ``stats.equivalence`` calls).

SD, R, MARGIN = 0.016, 0.86, 0.01
PAIRED_SD = SD * np.sqrt(2 * (1 - R))


def backends(rows: int, seeds: int, difference: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 1, (rows, seeds))
    a = 0.80 + SD * common
    b = 0.80 - difference + SD * (R * common + np.sqrt(1 - R**2) * rng.normal(0, 1, (rows, seeds)))
    return a, b


def share(verdicts: np.ndarray, *kinds: str) -> float:
    return float(np.isin(verdicts, kinds).mean())


def test_paired_interval_covers_at_its_level():
    a, b = backends(6000, 5, 0.02, seed=1)  # a - b = 2 points
    j = stats.judge(a, b, MARGIN)
    coverage = float(((j.zero_low <= 0.02) & (j.zero_high >= 0.02)).mean())
    assert 0.935 <= coverage <= 0.965  # 95%, ±0.0028 of simulation noise
    tost = float(((j.low <= 0.02) & (j.high >= 0.02)).mean())
    assert 0.88 <= tost <= 0.92  # TOST's interval: 90%
    for row in range(5):  # the interval parity prints is the one simulated
        shown = stats.paired_difference(a[row], b[row])
        assert (shown.low, shown.high) == pytest.approx((j.zero_low[row], j.zero_high[row]))


def test_paired_tost_size_at_the_margin_is_alpha():
    for difference in (MARGIN, -MARGIN):
        a, b = backends(20000, 8, difference, seed=2)
        size = share(stats.judge(a, b, MARGIN).verdict, stats.EQUIVALENT, stats.DIFFERENT_WITHIN)
        assert 0.040 <= size <= 0.056  # alpha 0.05, ±0.0015 of simulation noise


def test_beyond_and_different_keep_alpha():
    a, b = backends(20000, 8, MARGIN, seed=3)
    assert 0.040 <= share(stats.judge(a, b, MARGIN).verdict, stats.DIFFERENT_BEYOND) <= 0.056
    a, b = backends(20000, 8, 0.0, seed=4)
    j = stats.judge(a, b, MARGIN)
    assert share(j.verdict, stats.DIFFERENT_BEYOND) == 0.0 and share(j.verdict, stats.DIFFERENT_WITHIN) <= 0.056
    wide = stats.judge(a, b, 3 * MARGIN)  # a margin TOST nearly always clears: "different" alone at a true 0
    assert 0.040 <= share(wide.verdict, stats.DIFFERENT_WITHIN) <= 0.056
    a, b = backends(20000, 10, 0.005, seed=5)  # the audit's case: 0.5 pt, 10 seeds
    assert share(stats.judge(a, b, MARGIN).verdict, stats.DIFFERENT_BEYOND) < 0.001


def test_paired_tost_has_the_power_it_was_planned_for_and_welch_does_not():
    n = stats.seeds_for_equivalence(PAIRED_SD, MARGIN)
    assert n == 8
    a, b = backends(20000, n, 0.0, seed=6)
    paired = share(stats.judge(a, b, MARGIN).verdict, stats.EQUIVALENT, stats.DIFFERENT_WITHIN)
    welch = share(stats.judge(a, b, MARGIN, paired=False).verdict, stats.EQUIVALENT, stats.DIFFERENT_WITHIN)
    assert paired >= 0.80 and welch < 0.2


def test_sequential_boundary_keeps_the_error_over_every_look():
    for spending in stats.SPENDING:
        design = sequential.Design(spending=spending)
        assert design.looks == (2, 4, 6, 8, 10, 11)
        claims = {}
        for difference, kinds in ((MARGIN, (stats.EQUIVALENT, stats.DIFFERENT_WITHIN)),
                                  (MARGIN, (stats.DIFFERENT_BEYOND,))):
            a, b = backends(10000, design.horizon, difference, seed=8)
            claimed = np.zeros(len(a), dtype=bool)
            for index, seeds in enumerate(design.looks):
                verdicts = stats.judge(a[:, :seeds], b[:, :seeds], MARGIN, design.levels(index)).verdict
                claimed |= np.isin(verdicts, kinds)
            claims[kinds] = float(claimed.mean())
        assert all(0.035 <= rate <= 0.056 for rate in claims.values()), (spending, claims)


def test_looking_without_the_boundary_would_not_keep_it():
    design = sequential.Design()
    a, b = backends(20000, design.horizon, MARGIN, seed=8)
    claimed = np.zeros(len(a), dtype=bool)
    for seeds in design.looks:
        claimed |= np.isin(stats.judge(a[:, :seeds], b[:, :seeds], MARGIN).verdict, [stats.EQUIVALENT])
    assert claimed.mean() > 0.08  # why the boundary is there


def test_the_jax_tensorflow_pair_settles_within_ten_seeds_in_simulation():
    design = sequential.Design()
    a, b = backends(20000, design.horizon, 0.0, seed=9)
    settled = np.zeros(len(a), dtype=bool)
    for index, seeds in enumerate(design.looks):
        if seeds <= 10:
            settled |= np.isin(stats.judge(a[:, :seeds], b[:, :seeds], MARGIN, design.levels(index)).verdict,
                               stats.SETTLED)
    assert settled.mean() >= 0.80


def test_spending_functions():
    assert stats.alpha_spent(1.0) == pytest.approx(0.05) and stats.alpha_spent(1.0, spending="pocock") == 0.05
    assert stats.alpha_spent(0.5) == pytest.approx(2 - 2 * sps.norm.cdf(1.959964 / np.sqrt(0.5)), abs=1e-6)
    assert stats.alpha_spent(0.5, spending="pocock") == pytest.approx(0.05 * np.log(1 + (np.e - 1) / 2))
    assert stats.alpha_spent(0.0) == 0.0
    with pytest.raises(ValueError, match="unknown spending"):
        stats.alpha_spent(0.5, spending="haybittle")


def test_sequential_levels():
    assert stats.sequential_levels((10,)) == (0.05,)
    levels = stats.sequential_levels((2, 4, 6, 8, 10, 11))
    assert levels[0] == 0.0  # O'Brien-Fleming spends nothing at 2 of 11 seeds
    assert all(0 < level < 0.05 for level in levels[1:]) and list(levels[1:]) == sorted(levels[1:])
    pocock = stats.sequential_levels((2, 4, 6, 8, 10, 11), spending="pocock")
    assert pocock[1] > levels[1] and pocock[-1] < levels[-1]  # Pocock spends early, and has less left at the end
    for bad in ((), (1, 4), (4, 4), (6, 4)):
        with pytest.raises(ValueError):
            stats.sequential_levels(bad)
    # With many seeds a look the t boundary is the normal one: O'Brien-Fleming-like spending over two equally
    # spaced looks at one-sided 0.025 has z = 2.9626 and 1.9686 (as gsDesign's sfLDOF; normal boundaries from
    # scipy.stats.multivariate_normal). The first look spends alpha_spent(0.5) exactly.
    first, last = stats.sequential_levels((60, 120), 0.025)
    assert first == pytest.approx(sps.norm.sf(2.9626), rel=0.08) and last == pytest.approx(sps.norm.sf(1.9686),
                                                                                            abs=0.001)
    look = stats.look_levels((4, 8), 1)
    assert look.look == "look 2 of 2, O'Brien-Fleming spending" and look.alpha == 0.05
    assert look.zero == pytest.approx(2 * stats.sequential_levels((4, 8), 0.025)[1])


# ----------------------------------------------------------------------------------------- parity

def analyzed(tmp_path, *documents, **kwargs):
    for document in documents:
        write_result(tmp_path, document)
    runs, _ = results.load([tmp_path])
    return parity.analyze(results.results_of(runs), **kwargs)


def pairs_of(group: parity.ParityGroup) -> dict[tuple[str, str, str], parity.PairVerdict]:
    return {(v.first.split()[0], v.second.split()[0], v.metric): v for v in group.pairs}


def test_per_backend_means_intervals_and_pairwise_verdicts(tmp_path):
    [group] = analyzed(tmp_path, seeded_run("tensorflow", TF, seconds=50), seeded_run("jax", JAX, seconds=45),
                       seeded_run("torch", [v + 0.10 for v in TORCH], seconds=120))
    by_label = {b.label.split()[0]: b for b in group.backends}
    assert [r.seed for r in by_label["jax"].runs] == [0, 1, 2, 3, 4]
    assert by_label["tensorflow"].accuracy.estimate == pytest.approx(np.mean(TF))
    assert by_label["tensorflow"].mlperf_seconds == 50.0
    pairs = pairs_of(group)
    unsure = pairs["jax", "tensorflow", "val_accuracy"]
    assert unsure.verdict.startswith("not settled after 5 seeds, 90% CI [")
    assert unsure.difference.estimate == pytest.approx(np.mean(JAX) - np.mean(TF))  # first minus second
    assert unsure.seeds == (0, 1, 2, 3, 4) and unsure.note.startswith("seeds for 80% power")
    assert pairs["jax", "torch", "val_accuracy"].verdict.startswith("different, by more than ±1 pt, 90% CI [-")
    assert pairs["jax", "tensorflow", "epochs"].verdict.startswith("not comparable at this resolution")
    [epochs_row] = [r for r in parity.pair_rows(group) if r[0].startswith("jax 1.0.0 / tensorflow") and r[1] ==
                    "epochs to target"]
    assert epochs_row[2:6] == ["5 paired", "—", "—", "—"]
    [accuracy_row] = [r for r in parity.pair_rows(group) if r[0] == "jax 1.0.0 - tensorflow 1.0.0"]
    assert accuracy_row[2] == "5 paired, r -0.71: as precise as ≈ 3 unpaired (costs ≈ 2: the seeds move apart)"
    seconds = pairs["jax", "torch", "seconds"]
    assert seconds.verdict.startswith("different, by more than ±10%") and seconds.difference.estimate == 45 / 120
    text = "\n".join(parity.render_markdown([group]))
    assert "| jax 1.0.0 | 5 (0 to 4) | 0.802 0.796 0.825 0.795 0.781 |" in text
    assert "paired TOST" in text and "±1 pt" in text and "Fixed design, alpha 0.05." in text


def test_seeds_pair_and_the_pairing_shows(tmp_path):
    [group] = analyzed(tmp_path, seeded_run("jax", list(BASE + NOISE)), seeded_run("tensorflow", list(BASE)))
    [accuracy] = [v for v in group.pairs if v.metric == "val_accuracy"]
    assert accuracy.verdict.startswith("equivalent within ±1 pt, 90% CI [")
    assert accuracy.test.paired and accuracy.test.correlation > 0.99
    assert accuracy.difference.estimate == pytest.approx(np.mean(NOISE))
    [row] = [r for r in parity.pair_rows(group) if r[1] == "final val_accuracy"]
    assert row[0] == "jax 1.0.0 - tensorflow 1.0.0"
    assert row[2] == "8 paired, r 0.99: as precise as ≈ 1597 unpaired (saves ≈ 1589)"
    # Welch, on the same numbers, cannot tell: the pairing is what settles it.
    welch = stats.equivalence(BASE + NOISE, BASE, 0.01, paired=False)
    assert welch.verdict == stats.UNSETTLED


def test_welch_only_for_seeds_not_shared_and_the_note_says_so(tmp_path):
    [group] = analyzed(tmp_path, seeded_run("jax", JAX), seeded_run("tensorflow", TF, seeds=[5, 6, 7, 8, 9]))
    [accuracy] = [v for v in group.pairs if v.metric == "val_accuracy"]
    assert not accuracy.test.paired and accuracy.note.startswith("Welch (unpaired): no seeds in common")
    assert accuracy.difference.estimate == pytest.approx(np.mean(JAX) - np.mean(TF))
    assert parity.pairing_text(accuracy) == "Welch, 10 seeds"
    bound = stats.sd_upper_bound(max(np.std(JAX, ddof=1), np.std(TF, ddof=1)), 5)  # planned from the wider side
    assert f"at this SD per backend's 95% upper bound ({bound * 100:.2g} pt)" in accuracy.note


def test_one_seed_in_common_is_no_pairing(tmp_path):
    [group] = analyzed(tmp_path, seeded_run("jax", JAX), seeded_run("tensorflow", TF, seeds=[4, 5, 6, 7, 8]))
    [accuracy] = [v for v in group.pairs if v.metric == "val_accuracy"]
    assert not accuracy.test.paired and accuracy.note.startswith("Welch (unpaired): 1 seed in common")


def test_seeds_on_one_side_only_are_left_out_and_named(tmp_path):
    [group] = analyzed(tmp_path, seeded_run("jax", [*JAX, 0.5, 0.5]), seeded_run("tensorflow", TF))
    [accuracy] = [v for v in group.pairs if v.metric == "val_accuracy"]
    assert accuracy.seeds == (0, 1, 2, 3, 4) and "seeds 5, 6 only on jax 1.0.0, left out" in accuracy.note
    assert accuracy.difference.estimate == pytest.approx(np.mean(JAX) - np.mean(TF))


def test_verdicts_say_what_they_mean(tmp_path):
    tight = list(BASE + NOISE / 10)
    [group] = analyzed(tmp_path, seeded_run("jax", tight), seeded_run("tensorflow", list(BASE + 0.004)),
                       seeded_run("torch", list(BASE - 0.03)))
    pairs = pairs_of(group)
    assert pairs["jax", "tensorflow", "val_accuracy"].verdict.startswith("different, but within ±1 pt, 90% CI [-0.")
    assert pairs["jax", "torch", "val_accuracy"].verdict.startswith("different, by more than ±1 pt, 90% CI [+3.")
    assert pairs["tensorflow", "torch", "val_accuracy"].verdict.startswith("different, by more than ±1 pt")


def test_an_unsettled_pair_says_what_a_stated_sd_would_need(tmp_path):
    [group] = analyzed(tmp_path, seeded_run("jax", JAX), seeded_run("tensorflow", TF), sd_bound=0.016)
    [accuracy] = [v for v in group.pairs if v.metric == "val_accuracy"]
    assert "24 at a paired SD ≤ 1.6 pt (stated)" in accuracy.note
    bound = stats.sd_upper_bound(accuracy.test.sd, 5)
    assert f"at this paired SD's 95% upper bound ({bound * 100:.2g} pt)" in accuracy.note


def test_equal_backends_are_equivalent_and_the_margin_is_the_users(tmp_path):
    close = [0.800, 0.801, 0.799, 0.800, 0.802]
    [group] = analyzed(tmp_path, seeded_run("jax", close), seeded_run("torch", [v + 0.003 for v in close]))
    [verdict] = [v.verdict for v in group.pairs if v.metric == "val_accuracy"]
    assert verdict.startswith("different, but within ±1 pt")  # exactly 0.3 pt on every seed
    [strict] = parity.analyze(results.results_of(results.load([tmp_path])[0]), margin=0.001)
    assert [v.verdict for v in strict.pairs if v.metric == "val_accuracy"] == [
        "different, by more than ±0.1 pt, 90% CI [-0.3, -0.3] pt"]


def test_sequential_levels_reach_the_verdicts_and_the_text(tmp_path):
    write_result(tmp_path, seeded_run("jax", list(BASE + NOISE)))
    write_result(tmp_path, seeded_run("tensorflow", list(BASE)))
    found = results.results_of(results.load([tmp_path])[0])
    levels = stats.look_levels((4, 8), 1)
    [group] = parity.analyze(found, levels=levels)
    [accuracy] = [v for v in group.pairs if v.metric == "val_accuracy"]
    assert accuracy.test.levels == levels and "90% repeated CI" in accuracy.verdict
    text = "\n".join(parity.render_markdown([group]))
    assert "Group-sequential design, look 2 of 2, O'Brien-Fleming spending" in text
    [early] = parity.analyze(found, levels=stats.Levels(0.0, 0.0, look="look 1 of 6"))
    assert all(v.verdict.startswith("not settled") for v in early.pairs if v.metric == "val_accuracy")


def test_seeds_pool_across_files_and_a_rerun_seed_keeps_its_newest_result(tmp_path):
    [group] = analyzed(tmp_path, seeded_run("jax", [0.70, 0.71], seeds=[0, 1]),
                       seeded_run("jax", [0.72], seeds=[2], started="2026-11-29T09:00:00+00:00"),
                       seeded_run("jax", [0.90], seeds=[0], started="2026-11-29T10:00:00+00:00"))
    [jax] = group.backends
    assert {r.seed: r.final_val_accuracy for r in jax.runs} == {0: 0.90, 1: 0.71, 2: 0.72}


def test_runs_of_other_sizes_are_kept_apart_and_failed_seeds_are_shown(tmp_path):
    groups = analyzed(tmp_path, seeded_run("jax", JAX), seeded_run("jax", JAX, profile="full"),
                      seeded_run("torch", [0.8, 0.8], status="failed: training loss became nan at epoch 1, step 3"))
    assert len(groups) == 2
    quick = next(g for g in groups if g.key.group.profile == "quick")
    torch = next(b for b in quick.backends if b.label.startswith("torch"))
    assert torch.ok_runs == [] and torch.accuracy is None
    assert "seed 0 failed" in "\n".join(parity.render_markdown([quick]))


def test_unreached_targets_count_by_mlperfs_rule(tmp_path):
    [group] = analyzed(tmp_path, seeded_run("jax", [0.75, 0.65, 0.72, 0.74, 0.76], first=[0.6] * 5,
                                            seconds=[10.0, 11.0, 12.0, 13.0, 14.0]),
                       seeded_run("torch", [0.75, 0.65, 0.66, 0.74, 0.76], first=[0.6] * 5))
    jax, torch = sorted(group.backends, key=lambda b: b.label)
    assert jax.values("epochs") == [2, 2, 2, 2] and len(jax.values("val_accuracy")) == 5
    assert jax.mlperf_seconds == pytest.approx((2 * 12 + 2 * 13 + 2 * 14) / 3)  # seed 1 is the slowest, dropped
    assert torch.mlperf_seconds is None and torch.mlperf.invalid
    text = "\n".join(parity.render_markdown([group]))
    assert "4 of 5 reached" in text and "(1 seed unreached, counted as the slowest)" in text
    assert "invalid: 2 of 5 seeds never reached the target (MLPerf allows one)" in text
    seconds = pairs_of(group)["jax", "torch", "seconds"]
    assert seconds.test is None and seconds.verdict == (
        "not comparable: never reached the target (seed 1 on jax 1.0.0, seed 1 on torch 1.0.0, seed 2 on torch 1.0.0)")


def test_epochs_are_compared_only_at_a_fine_enough_resolution():
    run = lambda seed, epochs, step: parity.SeedRun(seed, "ok", 0.8, epochs, 10.0 * epochs, tuple(
        {"epoch": step * i, "val_accuracy": 0.8} for i in range(1, 60)), "", "")
    coarse = [parity.BackendSeeds(name, ("x",), "", [run(s, 1, 1) for s in range(5)]) for name in ("a", "b")]
    [epochs] = [v for v in parity.compare_pair(*coarse) if v.metric == "epochs"]
    assert epochs.test is None and epochs.verdict == (
        "not comparable at this resolution: validated every 1 epoch, a step of 100% against a margin of ±10%")
    fine = [parity.BackendSeeds(name, ("x",), "", [run(s, 12.0 + 0.25 * ((s + k) % 3), 0.25) for s in range(5)])
            for k, name in enumerate(("a", "b"))]
    [epochs] = [v for v in parity.compare_pair(*fine) if v.metric == "epochs"]
    assert epochs.test is not None and epochs.verdict.startswith("equivalent within ±10%")


@pytest.mark.parametrize(("text", "value"), [("1pt", 0.01), ("0.5 pt", 0.005), ("2%", 0.02), ("0.01", 0.01)])
def test_margin_parses(text, value):
    assert parity.margin_points(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["1", "-1pt", "one", ""])
def test_margin_refuses(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parity.margin_points(text)


# ----------------------------------------------------------------------------- report and plots

ACLIMDB = {"source": "aclimdb", "origin": "aclImdb_v1.tar.gz", "train_samples": 5000, "test_samples": 2000,
           "maxlen": 200, "vocabulary_size": 81098, "tokenizer_version": 1}


def test_report_has_a_parity_section_only_with_several_seeds(tmp_path):
    one = tmp_path / "one"
    write_result(one, make_result("jax"))
    write_result(one, make_result("torch"))
    rows = results.results_of(results.load([one])[0])
    assert "Does accuracy hold across backends?" not in report.render_markdown(rows)
    several = tmp_path / "several"
    write_result(several, seeded_run("jax", JAX, dataset_info=ACLIMDB, dataset="aclimdb"))
    write_result(several, seeded_run("torch", TORCH, dataset_info=ACLIMDB, dataset="aclimdb"))
    rows = results.results_of(results.load([several])[0])
    text = report.render_markdown(rows, margin=0.02)
    assert "## Does accuracy hold across backends?" in text and "±2 pt" in text
    assert "mean of 5 seeds: 0.750 → 0.800 (see parity)" in text
    assert ("aclimdb archive, kerasbench tokenizer v1, 81,098-word vocabulary (Keras's imdb.npz: 88,584)"
            in text)
    document = json.loads(report.render(rows, "json"))
    assert len(document["parity"]) == 1 and len(document["parity"][0]["pairs"]) == 3
    assert {row["seed"] for row in document["rows"]} == {0, 1, 2, 3, 4}
    written = plots.plot(rows, tmp_path / "plots")
    assert any(p.name.startswith("curves_") for p in written)


def test_archive_data_records_its_tokenizer(tmp_path):
    from bench import aclimdb
    from bench.data import load_imdb
    from tests.imdb_archive import write_archive

    archive = write_archive(tmp_path / "aclImdb_v1.tar.gz")
    info = load_imdb("aclimdb", path=archive, maxlen=20, cache_dir=tmp_path / "cache").info()
    assert info["tokenizer_version"] == aclimdb.TOKENIZER_VERSION and info["vocabulary_size"] > 0
    assert f"kerasbench tokenizer v{aclimdb.TOKENIZER_VERSION}, {info['vocabulary_size']}-word" in (
        tables.data_description(info))


def test_data_sources_are_named():
    assert tables.data_description({"source": "keras"}).startswith("Keras's imdb.npz")
    assert "synthetic" in tables.data_description({"source": "synthetic"})
    assert "tokenizer version not recorded" in tables.data_description({"source": "aclimdb"})


def test_cli_parity(tmp_path):
    write_result(tmp_path, seeded_run("jax", JAX))
    write_result(tmp_path, seeded_run("tensorflow", TF))
    done = run_cli("parity", str(tmp_path), "--margin", "7pt", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "# Does accuracy hold across backends?" in done.stdout and "equivalent within ±7 pt" in done.stdout


# ---------------------------------------------------------------------------------------- compare

def test_compare_judges_the_seeds_of_a_line_together(tmp_path):
    base, wide, tight = tmp_path / "base", tmp_path / "wide", tmp_path / "tight"
    write_result(base, seeded_run("jax", JAX))
    write_result(wide, seeded_run("jax", TF))  # 1.6 points lower on average, inside the seed spread
    write_result(tight, seeded_run("jax", [v - 0.05 for v in JAX]))
    changes, regressions = cmp.compare([base], [wide], accuracy_drop=0.01)
    [accuracy] = [ch for ch in changes if ch.metric == "val_accuracy"]
    assert accuracy.name == "test_accuracy[jax-cpu]" and accuracy.verdict == "within seed spread"
    assert regressions == [] and "paired over 5 seeds, r -0.71: difference -1.6 pp" in accuracy.note
    _, regressions = cmp.compare([base], [tight], accuracy_drop=0.01)
    assert [r.verdict for r in regressions] == ["REGRESSION (accuracy)"]


def test_compare_pairs_seeds_where_welch_would_miss_the_drop(tmp_path):
    base, cur = tmp_path / "base", tmp_path / "cur"
    before = np.array([0.80, 0.86, 0.76, 0.83, 0.78])
    after = before - 0.03 + np.array([0.004, -0.006, 0.002, 0.0, -0.004])  # 3 points lower, seeds move together
    write_result(base, seeded_run("jax", list(before)))
    write_result(cur, seeded_run("jax", list(after)))
    _, [regression] = cmp.compare([base], [cur], accuracy_drop=0.02)
    assert regression.verdict == "REGRESSION (accuracy)"
    assert regression.note.startswith("paired over 5 seeds, r 1.00: difference -3.1 pp [-3.6, -2.6] (95%); "
                                      "different, by more than ±2 pt, 90% CI [-3.5, -2.7] pt")
    welch = stats.welch_difference(after, before)
    assert not welch.excludes(0.0)  # Welch alone would have called it "within seed spread"
    assert f"Welch (unpaired) would give {welch.estimate * 100:+.1f} pp [{welch.low * 100:+.1f}" in regression.note
    # The same drop, current - baseline, not the other way round: an improvement is no regression.
    _, improvements = cmp.compare([cur], [base], accuracy_drop=0.02)
    assert improvements == []


def test_compare_uses_welch_only_for_seeds_not_shared(tmp_path):
    base, cur = tmp_path / "base", tmp_path / "cur"
    write_result(base, seeded_run("jax", JAX))
    write_result(cur, seeded_run("jax", [v - 0.05 for v in TF], seeds=[5, 6, 7, 8, 9]))
    _, [regression] = cmp.compare([base], [cur], accuracy_drop=0.01)
    assert "no seed(s) in common" in regression.note and "(95%, Welch, unpaired)" in regression.note


def test_compare_with_one_seed_keeps_the_plain_rule_and_says_so(tmp_path):
    base, cur = tmp_path / "base", tmp_path / "cur"
    write_result(base, make_result("jax", accuracy=0.80))
    write_result(cur, make_result("jax", accuracy=0.75))
    _, [regression] = cmp.compare([base], [cur])
    assert regression.verdict == "REGRESSION (accuracy)" and "cannot judge seed spread" in regression.note


# -------------------------------------------------------------------------------------- settings

def options(**given) -> dict:
    return {"profile": "quick", "variant": "default", "dataset": "synthetic", "imdb_path": None, "device": "cpu",
            "batch_size": None, "maxlen": None, "epochs": None, "train_samples": None, "test_samples": None,
            "threads": 1, "seed": None, "seeds": None, "results_dir": None, **given}


def test_seed_lists_and_counts():
    assert seed_list("5") == (0, 1, 2, 3, 4) and str(seed_list("5")) == "0,1,2,3,4"
    assert seed_list("7,3") == (7, 3)
    assert seed_list("auto") is AUTO_SEEDS and str(seed_list(" Auto ")) == "auto"
    for bad in ("0", "1,1", "1,-2", "1001", ",", "automatic"):
        with pytest.raises(argparse.ArgumentTypeError):
            seed_list(bad)


def test_which_seeds_a_run_trains():
    assert from_options(options().get).accuracy_seeds == (1337,)
    parity_run = from_options(options(profile="parity").get)
    assert parity_run.accuracy_seeds == (0, 1, 2, 3, 4) and parity_run.profile.step_benchmarks is False
    assert parity_run.model.epochs == 2 and parity_run.train_samples == 5000
    assert from_options(options(profile="parity", seed=9).get).accuracy_seeds == (9,)
    assert from_options(options(seeds=seed_list("2")).get).describe()["seeds"] == [0, 1]
    with pytest.raises(ValueError, match="not both"):
        from_options(options(seed=1, seeds=seed_list("2")).get)
    with pytest.raises(ValueError, match="use python -m bench run"):
        from_options(options(seeds=AUTO_SEEDS).get)


# -------------------------------------------------------------------------------------- progress

class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_writes_at_most_once_per_interval_and_estimates_the_time_left():
    clock, lines = Clock(), []
    progress = training.Progress(lines.append, epochs=2, label="jax-cpu seed 3", every_s=1.0, clock=clock)
    progress.begin_epoch(1, 10)
    for step in range(1, 11):
        clock.now += 0.25
        progress.train_step(step, 0.5)
    assert len(lines) == 3  # steps 1, 5 and 9: a line at most once a second
    assert lines[0].startswith(training.PROGRESS_PREFIX + " jax-cpu seed 3 · epoch 1/2 · step 1/10 · loss 0.5000")
    assert lines[-1].endswith("~3 s left")  # 9 of 20 steps took 2.25 s: 11 more take about 2.75 s
    progress.train_step(3, 9.9)  # a worker thread finishing late does not move progress back
    assert "step 10/10" in progress.line() and "loss 0.5000" in progress.line()
    progress.validation_step(4)
    assert "validating batch 4" in progress.line()


def test_progress_survives_a_closed_terminal():
    def closed(line: str) -> None:
        raise BrokenPipeError

    progress = training.Progress(closed, epochs=1, clock=Clock())
    progress.begin_epoch(1, 2)
    progress.train_step(1, 0.7)  # no exception: training goes on


@pytest.mark.parametrize(("seconds", "text"), [(45, "45 s"), (185, "3 min 05 s"), (3720, "1 h 02 min")])
def test_durations(seconds, text):
    assert training.duration_text(seconds) == text


# ------------------------------------------------------------------------- one tiny seeded run

def test_bench_run_trains_each_seed_shows_progress_and_reports_parity(tmp_path):
    run_dir = tmp_path / "run"
    done = run_cli("run", "--backends", selected_backend(), "--profile", "parity", "--seeds", "2", "--epochs", "1",
                   "--dataset", "synthetic", "--train-samples", "64", "--test-samples", "64", "--maxlen", "20",
                   "--device", "cpu", "--run-dir", str(run_dir), timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "    kerasbench progress: " in done.stdout  # forwarded as it came, for every seed
    log = (run_dir / f"{selected_backend()}.log").read_text()
    assert log.count(training.PROGRESS_PREFIX) >= 2
    [run] = results.load([run_dir])[0]
    assert sorted((r.name.split("[")[1], r.context.seed) for r in run.results) == [
        (f"{selected_backend()}-cpu-seed0]", 0), (f"{selected_backend()}-cpu-seed1]", 1)]  # steps skipped
    assert run.info.settings["seeds"] == [0, 1]
    assert "## Does accuracy hold across backends?" in (run_dir / "REPORT.md").read_text()
    assert any(p.name.startswith("curves_") for p in run_dir.iterdir())


# ------------------------------------------------------------------- the parity section, from hand-made groups

def hand_made_group(levels=stats.FIXED):
    """Three backend lines and five pairs whose numbers are typed in, so the text can be checked to the character."""
    from bench.results import GroupKey

    def run(seed, acc, epochs=None, seconds=None, status="ok"):
        return parity.SeedRun(seed, status, acc, epochs, seconds, (), "n", "f")

    jax = parity.BackendSeeds(
        "jax 1.0", ("jax", "cpu", "3", "default"), "synthetic data",
        [run(0, 0.801, 2.0, 10.0), run(1, 0.812, 3.0, 12.5), run(2, 0.795)],
        accuracy=stats.Interval(0.8027, 0.79, 0.815, 3), epochs=stats.Interval(2.5, 1.0, 4.0, 2),
        seconds=stats.Interval(11.25, 5.0, 17.5, 2), mlperf=stats.MlperfTime(12.5, 3, 1))
    tf = parity.BackendSeeds(
        "tensorflow 2.0", ("tensorflow", "cpu", "3", "default"), "IMDB data",
        [run(0, 0.8), run(5, None, status="failed")], accuracy=stats.Interval(0.8, None, None, 1),
        mlperf=stats.MlperfTime(None, 1, 1, "needs 3 seeds or more"))
    torch = parity.BackendSeeds("torch 3.0", ("torch", "cpu", "3", "default"), "synthetic data", [])

    def equivalence(verdict, paired, n, r=None, unpaired=None, p=(0.5, 0.012)):
        interval = stats.Interval(0.0, -0.004, 0.006, n)
        return stats.Equivalence(0.001, 0.01, verdict, interval, interval, p[1], p[0], paired, n, 0.004, r, unpaired)

    pairs = [
        parity.PairVerdict("val_accuracy", "jax 1.0", "tensorflow 2.0", stats.Interval(0.0027, -0.005, 0.0104, 3),
                           equivalence(stats.EQUIVALENT, True, 3, 0.86, 12.4), "equivalent within ±1 pt", (0, 1, 2),
                           "a note"),
        parity.PairVerdict("epochs", "jax 1.0", "tensorflow 2.0", stats.Interval(1.25, 0.8, 1.9, 4),
                           equivalence(stats.UNSETTLED, False, 2), "not settled", (0, 1, 5, 6)),
        parity.PairVerdict("seconds", "jax 1.0", "torch 3.0", None, None, "not comparable", ()),
        parity.PairVerdict("val_accuracy", "jax 1.0", "torch 3.0", stats.Interval(-0.0031, None, None, 3),
                           equivalence(stats.UNSETTLED, True, 3, None, 2.0, p=(None, None)), "not settled", (0, 1, 2)),
        parity.PairVerdict("seconds", "tensorflow 2.0", "torch 3.0", stats.Interval(1.1, None, None, 1), None, "x",
                           (3, 4)),
    ]
    key = parity.ParityKey(GroupKey("parity", "synthetic", 32, 200, "cpu"), 1, 4992, 1984, 0.7)
    return parity.ParityGroup(key, [jax, tf, torch], pairs, levels=levels)


FIXED_METHOD = (
    "Means with Student-t 95% intervals over seeds. Pairs are compared seed by seed (the same seed gives every "
    "backend the same initial weights and batch order): a paired t interval of the per-seed differences and a "
    "paired TOST; r is the pair's correlation over seeds, and \"as precise as ≈ N unpaired\" the seeds per backend "
    "an unpaired (Welch) comparison would need for the same precision. Welch's unpaired test is used only for "
    "backends sharing fewer than two seeds. val_accuracy in points, epochs and seconds as ratios (tested on their "
    "logarithms). Fixed design, alpha 0.05. Verdicts against ±1 pt of val_accuracy and ±10% for epochs and "
    "seconds: \"equivalent\" when TOST's 90% interval lies inside the margin; \"different, but within\" when it "
    "does and the test of no difference also rejects; \"different, by more than\" when that interval lies beyond "
    "the margin; else \"not settled\", with the seeds a fixed design would need for 80% power at a true difference "
    "of 0 (statsmodels; from a stated SD bound, and from the 95% upper bound of the SD seen, never from the "
    "observed difference). Epochs to the target are known to the validation interval only, and are not compared "
    "where that step exceeds the margin. MLPerf time: the fastest and slowest seed dropped, the rest averaged, a "
    "seed that never reached the target counting as the slowest; more than one such seed makes it invalid.")


def test_the_parity_section_to_the_character():
    lines = parity.render_markdown([hand_made_group()])
    assert lines == [
        "## Parity: parity profile · synthetic data · batch 32 · maxlen 200 · cpu · 1 epoch · 4,992 / 1,984 reviews",
        "",
        "Data: IMDB data; synthetic data.",
        "",
        "| Backend | Seeds | final val_accuracy per seed | Mean [95% CI] | Epochs to 0.7: mean [95% CI] "
        "| Seconds to 0.7: mean [95% CI] | MLPerf time s |\n"
        "|---|---|---|---|---|---|---|\n"
        "| jax 1.0 | 3 (0 to 2) | 0.801 0.812 0.795 | 0.803 [0.790, 0.815] | 2.50 [1.00, 4.00], 2 of 3 reached "
        "| 11.2 [5.0, 17.5], 2 of 3 reached | 12.5 (1 seed unreached, counted as the slowest) |\n"
        "| tensorflow 2.0 | 2 (0, 5) | 0.800 seed 5 failed | 0.800 (1 seed) | not reached (1 seed) "
        "| not reached (1 seed) | needs 3 seeds or more |\n"
        "| torch 3.0 | 0 () |  | — | not reached (0 seeds) | not reached (0 seeds) | — |",
        "",
        "| Pair | Metric | Seeds | Difference [95% CI] | p (no difference) | p (TOST) | Verdict | Note |\n"
        "|---|---|---|---|---|---|---|---|\n"
        "| jax 1.0 - tensorflow 2.0 | final val_accuracy | 3 paired, r 0.86: as precise as ≈ 12 unpaired (saves ≈ 9) "
        "| +0.3 pt [-0.5, +1.0] | 0.500 | 0.012 | equivalent within ±1 pt | a note |\n"
        "| jax 1.0 / tensorflow 2.0 | epochs to target | Welch, 4 seeds | 1.25x [0.80, 1.90] | 0.500 | 0.012 "
        "| not settled |  |\n"
        "| jax 1.0 / torch 3.0 | seconds to target | — | — | — | — | not comparable |  |\n"
        "| jax 1.0 - torch 3.0 | final val_accuracy | 3 paired: as precise as ≈ 2 unpaired (costs ≈ 1: the seeds "
        "move apart) | -0.3 pt | — | — | not settled |  |\n"
        "| tensorflow 2.0 / torch 3.0 | seconds to target | 2 paired | 1.10x | — | — | x |  |",
        "",
        FIXED_METHOD,
        "",
    ]
    assert parity.render_markdown([hand_made_group()], heading="###")[0].startswith("### Parity: parity profile")


def test_a_sequential_look_is_named_in_the_headers_and_the_method():
    levels = stats.Levels(0.0012, 0.0034, 0.05, "look 2 of 6, O'Brien-Fleming spending")
    lines = parity.render_markdown([hand_made_group(levels)])
    assert lines[6].startswith("| Pair | Metric | Seeds | Difference [95% repeated CI] | p (no difference) |")
    assert lines[8] == FIXED_METHOD.replace(
        "Fixed design, alpha 0.05.",
        "Group-sequential design, look 2 of 6, O'Brien-Fleming spending: each claim keeps its error at 0.05 over every "
        "look (nominal levels at this look: 0.0012 per one-sided test, 0.0034 for the test of no difference; the "
        "verdict's interval is a repeated confidence interval).").replace("TOST's 90% interval", "TOST's 100% interval")


def test_to_json_holds_every_field():
    group = hand_made_group()
    [document] = json.loads(json.dumps(parity.to_json([group]), default=str))
    assert set(document) == {"key", "label", "margin", "time_margin", "confidence", "levels", "sd_bound", "backends",
                             "pairs"}
    assert document["key"] == {"group": {"profile": "parity", "dataset": "synthetic", "batch_size": 32,
                                         "maxlen": 200, "device": "cpu"},
                               "epochs": 1, "train_samples": 4992, "val_samples": 1984, "target": 0.7}
    assert document["label"] == group.key.label and document["levels"] == {"margin": 0.05, "zero": 0.05,
                                                                          "alpha": 0.05, "look": ""}
    assert (document["margin"], document["time_margin"], document["confidence"], document["sd_bound"]) == (
        0.01, 0.1, 0.95, None)
    jax = document["backends"][0]
    assert jax["line"] == ["jax", "cpu", "3", "default"] and jax["label"] == "jax 1.0"
    assert jax["accuracy"] == {"estimate": 0.8027, "low": 0.79, "high": 0.815, "n": 3, "confidence": 0.95}
    assert [r["seed"] for r in jax["runs"]] == [0, 1, 2] and jax["mlperf"]["score"] == 12.5
    assert document["pairs"][0]["test"]["p_tost"] == 0.012 and document["pairs"][2]["test"] is None
    assert [p["metric"] for p in document["pairs"]] == ["val_accuracy", "epochs", "seconds", "val_accuracy", "seconds"]


def test_render_of_result_files(tmp_path):
    assert parity.render([]) == "No accuracy results.\n"
    one = [seeded_run("jax", [0.80]), seeded_run("tensorflow", [0.81])]
    for document in one:
        write_result(tmp_path / "one", document)
    found = results.results_of(results.load([tmp_path / "one"])[0])
    text = parity.render(found)
    assert text.startswith("# Does accuracy hold across backends?\n\n## Parity: ")
    assert text.endswith("\n_One seed per backend: run the accuracy benchmark with --seeds 5 (or --profile parity) "
                         "to see the seed-to-seed spread._\n")
    document = json.loads(parity.render(found, fmt_name="json"))
    assert list(document) == ["parity"] and document["parity"][0]["margin"] == 0.01
    assert json.loads(parity.render(found, margin=0.02, fmt_name="json"))["parity"][0]["margin"] == 0.02


def test_small_texts_at_their_edges():
    run = lambda seed: parity.SeedRun(seed, "ok", 0.8, None, None, (), "n", "f")
    assert parity._seeds_text([run(3), run(4)]) == "2 (3, 4)"  # two seeds are listed, not a range
    assert parity._seeds_text([run(3), run(4), run(5)]) == "3 (3 to 5)"
    assert parity._seeds_text([run(3), run(5), run(6)]) == "3 (3, 5, 6)"
    interval = stats.Interval(0.0, -0.004, 0.006, 4)

    def pairing(unpaired):
        test = stats.Equivalence(0.001, 0.01, stats.EQUIVALENT, interval, interval, 0.01, 0.5, True, 4, 0.004, None,
                                 unpaired)
        return parity.pairing_text(parity.PairVerdict("val_accuracy", "a", "b", interval, test, "v", (0, 1, 2, 3)))

    assert pairing(4.0) == "4 paired: as precise as ≈ 4 unpaired (saves ≈ 0)"
    assert pairing(4.4) == "4 paired: as precise as ≈ 4 unpaired (saves ≈ 0)"
    assert pairing(3.6) == "4 paired: as precise as ≈ 4 unpaired (costs ≈ 0: the seeds move apart)"
    assert pairing(None) == "4 paired"


@pytest.mark.parametrize(("text", "message"), [
    ("one", "'one' is not a margin: write e.g. 1pt, 0.5pt or 0.01"),
    ("2", "'2' is ambiguous: write 2pt, or a fraction below 1"),
])
def test_margin_refusals_say_what_to_write(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=f"^{message}$"):
        parity.margin_points(text)


# ------------------------------------------------------- the seed statistics, field by field, against SciPy

X = np.array([0.801, 0.812, 0.795, 0.820, 0.806])
Y = np.array([0.798, 0.806, 0.796, 0.812, 0.800])


def test_a_paired_equivalence_field_by_field():
    levels = stats.Levels(margin=0.04, zero=0.02)  # a 92% interval for the margin, 98% for no difference
    test = stats.equivalence(X, Y, 0.01, levels)
    d = X - Y
    margin_ci = sps.ttest_rel(X, Y).confidence_interval(0.92)
    zero_ci = sps.ttest_rel(X, Y).confidence_interval(0.98)
    p_tost = max(sps.ttest_rel(X + 0.01, Y, alternative="greater").pvalue,
                 sps.ttest_rel(X - 0.01, Y, alternative="less").pvalue)
    assert test.interval == stats.Interval(pytest.approx(d.mean()), pytest.approx(margin_ci.low),
                                           pytest.approx(margin_ci.high), 5, pytest.approx(0.92))
    assert test.zero_interval == stats.Interval(pytest.approx(d.mean()), pytest.approx(zero_ci.low),
                                                pytest.approx(zero_ci.high), 5, pytest.approx(0.98))
    assert test.p_tost == pytest.approx(p_tost) and test.p_equal == pytest.approx(sps.ttest_rel(X, Y).pvalue)
    assert test.sd == pytest.approx(np.std(d, ddof=1)) and test.n == 5 and test.paired and test.margin == 0.01
    assert test.correlation == pytest.approx(sps.pearsonr(X, Y).statistic) and test.levels == levels
    assert test.unpaired_seeds == pytest.approx(5 * (np.var(X, ddof=1) + np.var(Y, ddof=1)) / np.var(d, ddof=1))
    expected = (stats.DIFFERENT_WITHIN if p_tost < 0.04 and test.p_equal < 0.02 else stats.EQUIVALENT
                if p_tost < 0.04 else stats.DIFFERENT_BEYOND if margin_ci.low > 0.01 else stats.UNSETTLED)
    # p of no difference 0.049: "different" at 5%, not at this look's 2%; TOST's 0.012 passes 4%, not 1%.
    assert test.verdict == expected == stats.EQUIVALENT and test.reason == ""
    assert stats.equivalence(X, Y, 0.01).verdict == stats.DIFFERENT_WITHIN
    assert stats.equivalence(X, Y, 0.01, stats.Levels(margin=0.01, zero=0.02)).verdict == stats.UNSETTLED


def test_an_unpaired_equivalence_field_by_field():
    x, y = X, Y[:4]
    test = stats.equivalence(x, y, 0.01, paired=False)
    welch = sps.ttest_ind(x, y, equal_var=False)
    p_tost = max(sps.ttest_ind(x + 0.01, y, equal_var=False, alternative="greater").pvalue,
                 sps.ttest_ind(x - 0.01, y, equal_var=False, alternative="less").pvalue)
    ci = welch.confidence_interval(0.9)
    assert test.interval == stats.Interval(pytest.approx(x.mean() - y.mean()), pytest.approx(ci.low),
                                           pytest.approx(ci.high), 9, pytest.approx(0.9))
    assert test.p_tost == pytest.approx(p_tost) and test.p_equal == pytest.approx(welch.pvalue)
    assert test.n == 4 and not test.paired and test.correlation is None and test.unpaired_seeds is None
    assert test.sd == pytest.approx(max(np.std(x, ddof=1), np.std(y, ddof=1)))
    one = stats.equivalence([0.8], [0.7, 0.71], 0.01, paired=False)
    assert one.reason == "needs 2 seeds per backend to see the spread" and one.sd is None and one.n == 1
    assert one.interval == stats.Interval(pytest.approx(0.095), None, None, 3, pytest.approx(0.9))
    paired_one = stats.equivalence([0.8], [0.7], 0.01)
    assert paired_one.reason == "needs 2 seeds in common to see the spread" and paired_one.correlation is None
    with pytest.raises(ValueError, match=r"^margin must be >= 0$"):
        stats.equivalence(X, Y, -0.01)
    assert stats.equivalence(X, Y, 0.0).verdict in (*stats.SETTLED, stats.UNSETTLED)  # a margin of 0 is allowed


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # SciPy, on the constant side
def test_exact_differences_carry_their_levels():
    levels = stats.Levels(margin=0.02, zero=0.04)
    test = stats.equivalence([0.9, 0.8], [0.85, 0.75], 0.1, levels)
    assert test.interval == stats.Interval(pytest.approx(0.05), pytest.approx(0.05), pytest.approx(0.05), 2,
                                           pytest.approx(0.96))
    assert test.zero_interval.confidence == pytest.approx(0.96) and test.zero_interval.low == pytest.approx(0.05)
    assert test.verdict == stats.DIFFERENT_WITHIN and test.p_equal is None and test.unpaired_seeds is None
    assert stats.equivalence([0.9, 0.8], [0.9, 0.8], 0.1).verdict == stats.EQUIVALENT
    unpaired = stats.equivalence([0.9, 0.9], [0.7, 0.7, 0.7], 0.1, paired=False)
    assert unpaired.verdict == stats.DIFFERENT_BEYOND and unpaired.interval.n == 5 and unpaired.sd == 0.0
    one_spread = stats.equivalence([0.9, 0.9], [0.7, 0.71], 0.1, paired=False)  # one side varies: a test
    assert one_spread.p_tost is not None


def test_judge_over_rows_at_nominal_levels():
    rows_x = np.stack([X, X + 0.03, X])
    rows_y = np.stack([Y, Y, Y + 0.0005])
    levels = stats.Levels(margin=0.04, zero=0.02)
    judged = stats.judge(rows_x, rows_y, 0.01, levels)
    for i in range(3):
        two_sided = sps.ttest_rel(rows_x[i], rows_y[i])
        ci = two_sided.confidence_interval(0.92)
        zero = two_sided.confidence_interval(0.98)
        assert (judged.low[i], judged.high[i]) == pytest.approx((ci.low, ci.high))
        assert (judged.zero_low[i], judged.zero_high[i]) == pytest.approx((zero.low, zero.high))
        assert judged.p_equal[i] == pytest.approx(two_sided.pvalue)
    assert judged.verdict.tolist()[:2] == [stats.EQUIVALENT, stats.DIFFERENT_BEYOND]
    welch = stats.judge(rows_x, rows_y, 0.01, levels, paired=False)
    ci = sps.ttest_ind(rows_x[1], rows_y[1], equal_var=False).confidence_interval(0.92)
    assert (welch.low[1], welch.high[1]) == pytest.approx((ci.low, ci.high))
    below = stats.judge(Y, X + 0.03, 0.01)
    assert str(below.verdict) == stats.DIFFERENT_BEYOND


def test_means_and_process_intervals_by_hand():
    values = [0.80, 0.82, 0.79, 0.81]
    low, high = sps.t.interval(0.9, 3, loc=np.mean(values), scale=np.std(values, ddof=1) / 2)
    assert stats.mean_interval(values, 0.9) == stats.Interval(pytest.approx(0.805), pytest.approx(low),
                                                              pytest.approx(high), 4, 0.9)
    assert stats.mean_interval([0.8], 0.9) == stats.Interval(0.8, None, None, 1, 0.9)
    assert stats.mean_interval([0.1, 0.1, 0.1], 0.9) == stats.Interval(0.1, 0.1, 0.1, 3, 0.9)
    medians = [0.100, 0.110, 0.105]
    logs = np.log(medians)
    low, high = sps.t.interval(0.9, 2, loc=logs.mean(), scale=np.std(logs, ddof=1) / math.sqrt(3))
    assert stats.process_interval(medians, 0.9) == stats.Interval(
        pytest.approx(math.exp(logs.mean())), pytest.approx(math.exp(low)), pytest.approx(math.exp(high)), 3, 0.9)
    assert stats.process_interval([0.1], 0.9) == stats.Interval(pytest.approx(0.1), None, None, 1, 0.9)
    assert stats.process_interval([0.3, 0.3], 0.9) == stats.Interval(0.3, 0.3, 0.3, 2, 0.9)
    with pytest.raises(ValueError, match=r"^process medians must be positive$"):
        stats.process_interval([0.1, 0.0])
    with pytest.raises(ValueError, match=r"^need a non-empty list of numbers$"):
        stats.mean_interval([])
    with pytest.raises(ValueError, match=r"^values must be finite$"):
        stats.mean_interval([0.8, math.nan])
    with pytest.raises(ValueError, match=r"^paired samples need one value each per seed: 2 against 3$"):
        stats.paired_difference([0.8, 0.8], [0.7, 0.7, 0.7])


def test_correlation_trimmed_mean_and_mlperf_by_hand():
    assert stats.correlation(X, Y) == pytest.approx(sps.pearsonr(X, Y).statistic)
    assert stats.correlation(X[:2], Y[:2]) is None
    assert stats.correlation([0.8, 0.8, 0.8], Y[:3]) is None and stats.correlation(X[:3], [0.8, 0.8, 0.8]) is None
    assert stats.correlation(X[:3], Y[:3]) == pytest.approx(sps.pearsonr(X[:3], Y[:3]).statistic)
    assert stats.trimmed_mean_mlperf([10.0, 1.0, 2.0, 3.0]) == 2.5 and stats.trimmed_mean_mlperf([3.0, 1.0, 2.0]) == 2
    assert stats.trimmed_mean_mlperf([1.0, 2.0]) is None
    assert stats.mlperf_time([10.0, 12.0, 11.0, None]) == stats.MlperfTime(11.5, 4, 1)
    assert stats.mlperf_time([10.0, 12.0, 11.0, 13.0]) == stats.MlperfTime(11.5, 4, 0)
    invalid = stats.mlperf_time([10.0, None, 11.0, None])
    assert invalid == stats.MlperfTime(None, 4, 2, "invalid: 2 of 4 seeds never reached the target (MLPerf allows one)")
    assert invalid.invalid and not stats.MlperfTime(1.0, 3, 1).invalid
    assert stats.mlperf_time([10.0, None]) == stats.MlperfTime(None, 2, 1, "needs 3 seeds or more")


def nct_power(n, sd, margin, difference=0.0, alpha=0.05, paired=True):
    """TOST's power bound written out with the noncentral t: P(lower rejects) + P(upper rejects) - 1."""
    df, scale = (n - 1, math.sqrt(n)) if paired else (2 * n - 2, math.sqrt(n / 2))
    critical = sps.t.isf(alpha, df)
    lower = sps.nct.sf(critical, df, (difference + margin) / sd * scale)
    upper = sps.nct.cdf(-critical, df, (difference - margin) / sd * scale)
    return max(0.0, lower + upper - 1)


def test_tost_power_and_planned_seeds_by_hand():
    assert stats.tost_power(6, 0.01, 0.015) == pytest.approx(nct_power(6, 0.01, 0.015))
    assert stats.tost_power(6, 0.01, 0.015, 0.003, 0.1, paired=False) == pytest.approx(
        nct_power(6, 0.01, 0.015, 0.003, 0.1, paired=False))
    assert stats.tost_power(2, 0.01, 0.001) == 0.0  # the bound is clipped at 0
    for sd, margin, difference, paired in ((0.01, 0.01, 0.0, True), (0.016, 0.01, 0.002, True),
                                           (0.01, 0.01, 0.0, False)):
        n = stats.seeds_for_equivalence(sd, margin, difference, paired=paired)
        assert nct_power(n, sd, margin, difference, paired=paired) >= 0.8
        assert n == 2 or nct_power(n - 1, sd, margin, difference, paired=paired) < 0.8
    assert stats.seeds_for_equivalence(0.001, 0.01) == 2  # the fewest with a spread already suffice
    assert stats.seeds_for_equivalence(0.01, 0.01, power=0.9) > stats.seeds_for_equivalence(0.01, 0.01)
    assert stats.seeds_for_equivalence(0.01, 0.01, alpha=0.1) < stats.seeds_for_equivalence(0.01, 0.01)
    assert stats.seeds_for_equivalence(0.5, 0.01) is None  # more than MAX_SEEDS_NEEDED
    for sd, difference in ((0.0, 0.0), (-0.01, 0.0), (math.inf, 0.0), (0.01, 0.01), (0.01, -0.02)):
        assert stats.seeds_for_equivalence(sd, 0.01, difference) is None
    with pytest.raises(ValueError, match=r"^need sd > 0 and n >= 2$"):
        stats.tost_power(1, 0.01, 0.01)
    with pytest.raises(ValueError, match=r"^need sd > 0 and n >= 2$"):
        stats.tost_power(5, 0.0, 0.01)


def test_sd_upper_bound_by_hand():
    assert stats.sd_upper_bound(0.01, 5, 0.9) == pytest.approx(0.01 * math.sqrt(4 / sps.chi2.ppf(0.1, 4)))
    assert stats.sd_upper_bound(0.01, 2) == pytest.approx(0.01 * math.sqrt(1 / sps.chi2.ppf(0.05, 1)))
    with pytest.raises(ValueError, match=r"^needs 2 values or more$"):
        stats.sd_upper_bound(0.01, 1)


def test_look_levels_name_the_look_and_split_the_test_of_no_difference():
    looks = (2, 4, 6)
    levels = stats.look_levels(looks, 1, 0.1, "pocock")
    assert levels.margin == stats.sequential_levels(looks, 0.1, "pocock")[1]
    assert levels.zero == pytest.approx(2 * stats.sequential_levels(looks, 0.05, "pocock")[1])
    assert levels.alpha == 0.1 and levels.look == "look 2 of 3, Pocock spending"
    assert stats.look_levels(looks, 2).look == "look 3 of 3, O'Brien-Fleming spending"
    assert stats.look_levels((6,), 0, 0.1) == stats.Levels(0.1, 0.1, 0.1)


def test_line_labels_name_only_what_tells_lines_apart():
    lines = [("jax", "cpu", "3.15", "default"), ("jax", "gpu", "3.15", "default"), ("torch", "cpu", "3.14", "fast")]
    versions = {lines[0]: "0.10", lines[2]: "2.13"}
    assert parity.line_label(lines[0], lines, versions) == "jax 0.10 on cpu, keras 3.15"
    assert parity.line_label(lines[1], lines, versions) == "jax on gpu, keras 3.15"
    assert parity.line_label(lines[2], lines, versions) == "torch 2.13 [fast] on cpu, keras 3.14"
    assert parity.line_label(lines[0], lines[:1], versions) == "jax 0.10"


def test_how_the_seeds_were_used_is_said():
    run = lambda seed: parity.SeedRun(seed, "ok", 0.8, None, None, (), "n", "f")
    a = parity.BackendSeeds("a", (), "", [run(s) for s in (0, 1, 2, 5)])
    b = parity.BackendSeeds("b", (), "", [run(s) for s in (0, 1, 2, 7, 8)])
    shared, x, y = parity._sides(a, b, "val_accuracy")
    assert shared == [0, 1, 2] and parity._design(a, b, shared, x, y) == (
        "seed 5 only on a, left out; seeds 7, 8 only on b, left out")
    assert parity._design(a, b, [0, 1], {0: 1, 1: 1}, {0: 1, 1: 1}) == ""
    assert parity._design(a, b, [0], x, y) == "Welch (unpaired): 1 seed in common"
    assert parity._design(a, b, [], x, y) == "Welch (unpaired): no seeds in common"


def test_an_unsettled_pair_names_the_seeds_each_plan_needs():
    interval = stats.Interval(0.0, -0.02, 0.02, 5)

    def needed(sd, n=5, paired=True, verdict=stats.UNSETTLED, sd_bound=None):
        test = stats.Equivalence(0.0, 0.01, verdict, interval, interval, 0.3, 0.9, paired, n, sd, None, None)
        return parity._needed(test, sd_bound)

    bound = stats.sd_upper_bound(0.012, 5)
    assert needed(0.012, sd_bound=0.01) == (
        "seeds for 80% power at a true difference of 0 (fixed design): 11 at a paired SD ≤ 1 pt (stated), "
        f"{stats.seeds_for_equivalence(bound, 0.01)} at this paired SD's 95% upper bound ({bound * 100:.2g} pt)")
    assert needed(0.012, paired=False) == (
        "seeds for 80% power at a true difference of 0 (fixed design): "
        f"{stats.seeds_for_equivalence(bound, 0.01, paired=False)} at this SD per backend's 95% upper bound "
        f"({bound * 100:.2g} pt)")
    assert needed(0.3).endswith("more than 1000 at this paired SD's 95% upper bound (71 pt)")  # 0.3 x sqrt(4 / 0.711)
    assert needed(0.012, verdict=stats.EQUIVALENT) == "" and needed(None) == "" and needed(0.0) == ""
    assert needed(0.012, n=1) == ""


def test_each_verdict_is_a_sentence_with_its_interval():
    def text(verdict, interval, n=5, reason="", levels=stats.FIXED):
        test = stats.Equivalence(0.001, 0.01, verdict, interval, interval, None, None, True, n, None, None, None,
                                 levels, reason)
        return parity.verdict_text(test, "±1 pt")

    interval = stats.Interval(0.001, -0.004, 0.006, 5, 0.9)
    assert text(stats.EQUIVALENT, interval) == "equivalent within ±1 pt, 90% CI [-0.4, +0.6] pt"
    assert text(stats.DIFFERENT_WITHIN, interval) == "different, but within ±1 pt, 90% CI [-0.4, +0.6] pt"
    assert text(stats.DIFFERENT_BEYOND, interval) == "different, by more than ±1 pt, 90% CI [-0.4, +0.6] pt"
    assert text(stats.UNSETTLED, interval) == "not settled after 5 seeds, 90% CI [-0.4, +0.6] pt"
    none = stats.Interval(0.001, None, None, 1)
    assert text(stats.UNSETTLED, none, 1, "needs 2 seeds") == "not settled after 1 seed (needs 2 seeds)"
    assert text(stats.EQUIVALENT, none, 2, "exact") == "equivalent within ±1 pt"  # a settled reason is not shown
    unbounded = stats.Interval(0.001, -math.inf, math.inf, 5, 1.0)
    look = stats.Levels(0.0, 0.0, 0.05, "look 1 of 3")
    assert text(stats.UNSETTLED, unbounded, levels=look) == (
        "not settled after 5 seeds (this look of the design may spend no error yet)")
    sequential_look = stats.Levels(0.01, 0.02, 0.05, "look 2 of 3")
    assert text(stats.EQUIVALENT, interval, levels=sequential_look) == (
        "equivalent within ±1 pt, 90% repeated CI [-0.4, +0.6] pt")
    ratio = stats.Equivalence(0.1, 0.1, stats.EQUIVALENT, stats.Interval(0.05, -0.05, 0.0953, 5, 0.9), interval,
                              None, None, True, 5, None, None, None)
    assert parity.verdict_text(ratio, "±10%", parity._ratio_text) == "equivalent within ±10%, 90% CI [0.95, 1.10]x"


def test_a_seed_reaches_its_target_at_the_first_validation_at_or_above_it(tmp_path):
    import dataclasses

    history = [{"epoch": 1, "val_accuracy": 0.69}, {"epoch": 2, "val_accuracy": None},
               {"epoch": 3, "val_accuracy": 0.70}, {"epoch": 4, "val_accuracy": 0.75}]
    write_result(tmp_path, seeded_run("jax", [0.75]))
    [r] = results.results_of(results.load([tmp_path])[0])
    accuracy = dataclasses.replace(r.accuracy, history=history, target_accuracy=0.70)
    r = dataclasses.replace(r, record=dataclasses.replace(r.record, metrics=accuracy))
    seed = parity.seed_run(r)
    assert seed.epochs_to_target == 3 and seed.history == tuple(history) and seed.name == r.name
    assert seed.validation_step == 1  # epochs 1, 3, 4: the finest step between two validations
    assert parity.SeedRun(0, "ok", 0.8, None, None, ({"epoch": 2, "val_accuracy": 0.8},), "", "").validation_step == 2
    assert parity.SeedRun(0, "ok", 0.8, None, None, (), "", "").validation_step is None
    assert not parity.SeedRun(0, "failed", 0.8, None, None, (), "", "").ok
    assert not parity.SeedRun(0, "ok", None, None, None, (), "", "").ok


def test_analysis_at_another_confidence_without_pairs(tmp_path):
    finals, seconds = [0.80, 0.82, 0.79, 0.81], [10.0, 12.0, 11.0, 13.0]
    write_result(tmp_path, seeded_run("jax", finals, seconds=seconds))
    write_result(tmp_path, seeded_run("torch", finals))
    found = results.results_of(results.load([tmp_path])[0])
    [group] = parity.analyze(found, confidence=0.9, with_pairs=False, sd_bound=0.02)
    assert group.pairs == [] and group.confidence == 0.9 and group.sd_bound == 0.02
    jax = group.backends[0]
    low, high = sps.t.interval(0.9, 3, loc=np.mean(finals), scale=np.std(finals, ddof=1) / 2)
    assert jax.accuracy == stats.Interval(pytest.approx(0.805), pytest.approx(low), pytest.approx(high), 4, 0.9)
    assert jax.epochs == stats.Interval(1.0, 1.0, 1.0, 4, 0.9)  # every seed passed 0.70 at its first epoch
    reached = seconds  # epoch 1 of each seed reached the target: its seconds are one epoch's
    low, high = sps.t.interval(0.9, 3, loc=np.mean(reached), scale=np.std(reached, ddof=1) / 2)
    assert jax.seconds == stats.Interval(pytest.approx(11.5), pytest.approx(low), pytest.approx(high), 4, 0.9)
    assert jax.mlperf == stats.MlperfTime(11.5, 4, 0)
    [paired] = parity.analyze(found, margin=0.02, time_margin=0.5)
    assert {v.metric for v in paired.pairs} == {"val_accuracy", "epochs", "seconds"}
    assert (paired.margin, paired.time_margin) == (0.02, 0.5)
    accuracy = next(v for v in paired.pairs if v.metric == "val_accuracy")
    assert accuracy.test.margin == 0.02 and accuracy.verdict.startswith("equivalent within ±2 pt")
    time = next(v for v in paired.pairs if v.metric == "seconds")
    assert time.test.margin == pytest.approx(math.log(1.5)) and time.verdict.startswith("equivalent within ±50%")


def test_times_of_backends_that_share_no_seed_are_compared_unpaired():
    def run(seed, seconds):
        history = ({"epoch": 1, "val_accuracy": 0.8},)
        return parity.SeedRun(seed, "ok", 0.8, 1.0, seconds, history, "", "")

    a = parity.BackendSeeds("a", ("x",), "", [run(0, 10.0), run(1, 11.0), run(2, 12.0)])
    b = parity.BackendSeeds("b", ("x",), "", [run(5, 10.5), run(6, 11.5)])
    [accuracy, seconds] = [v for v in parity.compare_pair(a, b, time_margin=0.2) if v.metric != "epochs"]
    assert seconds.seeds == (0, 1, 2, 5, 6) and not seconds.test.paired
    assert seconds.note == "Welch (unpaired): no seeds in common"
    welch = sps.ttest_ind(np.log([10.0, 11.0, 12.0]), np.log([10.5, 11.5]), equal_var=False)
    ci = welch.confidence_interval(0.95)
    assert (seconds.difference.low, seconds.difference.high) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    assert seconds.difference.estimate == pytest.approx(math.exp(np.mean(np.log([10, 11, 12])) - np.mean(np.log([
        10.5, 11.5]))))
    assert accuracy.seeds == (0, 1, 2, 5, 6) and not accuracy.test.paired
    coarse = [parity.BackendSeeds(n, ("x",), "", [run(s, 10.0) for s in range(3)]) for n in ("c", "d")]
    [epochs] = [v for v in parity.compare_pair(*coarse, time_margin=1.0) if v.metric == "epochs"]
    assert epochs.test is not None  # a step of 100% is not past a margin of 100%
    [epochs] = [v for v in parity.compare_pair(*coarse, time_margin=0.5) if v.metric == "epochs"]
    assert epochs.verdict == ("not comparable at this resolution: validated every 1 epoch, a step of 100% against "
                              "a margin of ±50%") and epochs.seeds == (0, 1, 2) and epochs.note == ""


def test_two_shared_seeds_pair_and_the_note_joins_its_parts():
    def run(seed, acc, seconds=None):
        return parity.SeedRun(seed, "ok", acc, None, seconds, (), "", "")

    a = parity.BackendSeeds("a", ("x",), "", [run(0, 0.80), run(1, 0.83), run(2, 0.81)])
    b = parity.BackendSeeds("b", ("x",), "", [run(0, 0.79), run(1, 0.80)])
    [accuracy] = parity.compare_pair(a, b, sd_bound=0.01)
    assert accuracy.test.paired and accuracy.seeds == (0, 1) and accuracy.test.n == 2
    assert accuracy.note.startswith("seed 2 only on a, left out; seeds for 80% power at a true difference of 0")
    assert accuracy.verdict.startswith("not settled after 2 seeds, 90% CI [") and accuracy.verdict.endswith("] pt")


def test_a_ratio_of_one_seed_each_has_no_interval():
    run = lambda seed, seconds: parity.SeedRun(seed, "ok", 0.8, None, seconds, (), "", "")
    a = parity.BackendSeeds("a", ("x",), "", [run(0, 10.0)])
    b = parity.BackendSeeds("b", ("x",), "", [run(1, 8.0)])
    [_, seconds] = parity.compare_pair(a, b)
    assert seconds.difference == stats.Interval(pytest.approx(1.25), None, None, 2, pytest.approx(0.95))
    assert parity.difference_text(seconds) == "1.25x"
    nothing = stats.Levels(0.0, 0.0, 0.05, "look 1 of 4")
    c = parity.BackendSeeds("c", ("x",), "", [run(0, 10.0), run(1, 11.0), run(2, 12.5)])
    d = parity.BackendSeeds("d", ("x",), "", [run(0, 9.0), run(1, 11.5), run(2, 12.0)])
    [_, unbounded] = parity.compare_pair(c, d, levels=nothing)
    assert unbounded.difference.low == 0.0 and unbounded.difference.high == math.inf
    assert unbounded.difference.confidence == 1.0 and unbounded.difference.n == 3


def test_seeds_needed_at_the_edges():
    interval = stats.Interval(0.0, -0.02, 0.02, 5)

    def needed(sd, n=5, paired=True, sd_bound=None):
        test = stats.Equivalence(0.0, 0.01, stats.UNSETTLED, interval, interval, 0.3, 0.9, paired, n, sd, None, None)
        return parity._needed(test, sd_bound)

    assert needed(0.012, n=2) != ""  # two seeds already show a spread
    sd = 0.0104 / math.sqrt(4 / sps.chi2.ppf(0.05, 4))  # its 95% upper bound is 1.04 pt: "1", where 1.05 is "1.1"
    bound = stats.sd_upper_bound(sd, 5)
    assert f"{bound * 100:.2g}" == "1" != f"{bound * 101:.2g}"
    assert needed(sd, paired=False, sd_bound=0.0104) == (
        "seeds for 80% power at a true difference of 0 (fixed design): "
        f"{stats.seeds_for_equivalence(0.0104, 0.01, paired=False)} at a SD per backend ≤ 1 pt (stated), "
        f"{stats.seeds_for_equivalence(bound, 0.01, paired=False)} at this SD per backend's 95% upper bound "
        f"({bound * 100:.2g} pt)")
    assert stats.seeds_for_equivalence(0.0104, 0.01, paired=False) != stats.seeds_for_equivalence(0.0104, 0.01)


def test_times_at_their_edges():
    def run(seed, epochs, seconds=10.0, history=({"epoch": 1, "val_accuracy": 0.8},)):
        return parity.SeedRun(seed, "ok", 0.8, epochs, seconds, history, "", "")

    # Two shared seeds pair; an unreached seed outside them is left out of the pair, not a reason to refuse it.
    a = parity.BackendSeeds("a", ("x",), "", [run(0, 1.0, 10.0), run(1, 1.0, 11.0), run(2, 1.0, None)])
    b = parity.BackendSeeds("b", ("x",), "", [run(0, 1.0, 10.5), run(1, 1.0, 11.2)])
    seconds = next(v for v in parity.compare_pair(a, b) if v.metric == "seconds")
    assert seconds.test is not None and seconds.test.paired and seconds.seeds == (0, 1)
    unreached = next(v for v in parity.compare_pair(b, a, levels=stats.FIXED) if v.metric == "seconds")
    assert unreached.test is not None  # seed 2 is not among the pair's seeds
    c = parity.BackendSeeds("c", ("x",), "", [run(0, 1.0, 10.0), run(1, 1.0, None)])
    d = parity.BackendSeeds("d", ("x",), "", [run(0, 1.0, 10.5), run(1, 1.0, 11.2)])
    refused = next(v for v in parity.compare_pair(c, d) if v.metric == "seconds")
    assert refused.verdict == "not comparable: never reached the target (seed 1 on c)" and refused.seeds == (0, 1)
    assert refused.note == "MLPerf counts a run that never reached the target as the slowest; a ratio needs both times"
    apart = parity.BackendSeeds("e", ("x",), "", [run(5, 1.0, 10.0), run(6, 1.0, None)])  # no seed in common
    welch = next(v for v in parity.compare_pair(apart, d) if v.metric == "seconds")
    assert welch.verdict == "not comparable: never reached the target (seed 6 on e)" and welch.seeds == ()
    # Epochs validated every 2 epochs, reached at 2: a step of 100%; without validations, every epoch is assumed.
    every_two = [{"epoch": 2, "val_accuracy": 0.8}, {"epoch": 4, "val_accuracy": 0.8}]
    e = [parity.BackendSeeds(n, ("x",), "", [run(s, 2.0, history=every_two) for s in range(3)]) for n in "fg"]
    [epochs] = [v for v in parity.compare_pair(*e, time_margin=0.5) if v.metric == "epochs"]
    assert epochs.verdict == ("not comparable at this resolution: validated every 2 epochs, a step of 100% against "
                              "a margin of ±50%")
    bare = [parity.BackendSeeds(n, ("x",), "", [run(s, 4.0, history=()) for s in range(3)]) for n in "hi"]
    [epochs] = [v for v in parity.compare_pair(*bare, time_margin=0.2) if v.metric == "epochs"]
    assert epochs.verdict == ("not comparable at this resolution: validated every 1 epoch, a step of 25% against "
                              "a margin of ±20%")


def test_groups_sort_by_their_text_skip_other_kinds_and_a_failed_line_has_no_mlperf_time(tmp_path):
    write_result(tmp_path, make_result("jax", kinds=("train_step",)), name="0-step.json")  # not an accuracy record
    write_result(tmp_path, seeded_run("jax", JAX, batch_size=32), name="a-32.json")
    write_result(tmp_path, seeded_run("jax", JAX, batch_size=100), name="b-100.json")
    write_result(tmp_path, seeded_run("torch", [0.8, 0.8], status="failed: nan", batch_size=100), name="c.json")
    groups = parity.analyze(results.results_of(results.load([tmp_path])[0]))
    assert [g.key.group.batch_size for g in groups] == [100, 32]  # "100" < "32"
    assert groups[0].key.epochs == 2 and groups[0].key.target == 0.7
    torch = next(b for b in groups[0].backends if b.label.startswith("torch"))
    assert torch.mlperf is None and torch.accuracy is None
    jax = next(b for b in groups[0].backends if b.label.startswith("jax"))
    assert jax.runs[0].file.endswith("b-100.json") and jax.runs[0].name == "test_accuracy[jax-cpu-seed0]"


def test_constant_means_equal_to_float_rounding_relative_to_the_values():
    # 1e-10 apart at 1000 is within 1e-12 of the values' size (constant); 1.5e-12 apart at 0.5 is not.
    exact = stats.welch_difference([1000.0, 1000.0 + 1e-10], [0.0, 0.0])
    assert exact.low == exact.high == exact.estimate  # zero width
    spread = stats.welch_difference([0.5, 0.5 + 1.5e-12], [0.0, 0.0])
    assert spread.high - spread.low > 1e-12
    with pytest.raises(ValueError, match=r"^values must be finite$"):
        stats.mean_interval([0.8, None])
    nothing = stats.judge(np.stack([X, Y]), np.stack([Y, X]), 0.01, stats.Levels(0.0, 0.0))
    assert nothing.low.shape == (2,) and np.all(nothing.low == -np.inf) and np.all(nothing.zero_high == np.inf)


def test_renderings_of_several_groups_and_wide_differences(tmp_path):
    group = hand_made_group()
    lines = parity.render_markdown([group, group])
    assert sum(line.startswith("## Parity: ") for line in lines) == 2
    wide = parity.PairVerdict("val_accuracy", "a", "b", stats.Interval(0.1, 0.05, 0.15, 3), None, "v")
    assert parity.difference_text(wide) == "+10.0 pt [+5.0, +15.0]"
    assert parity._points(stats.Interval(0.1, 0.05, 0.15, 3)) == "[+5.0, +15.0] pt"
    full = parity.BackendSeeds("x", (), "", [parity.SeedRun(s, "ok", 0.8, 2.0, 10.0, (), "", "") for s in (0, 1)],
                               epochs=stats.Interval(2.0, 2.0, 2.0, 2), mlperf=stats.MlperfTime(10.0, 3, 0))
    assert parity._reached_text(full, "epochs", ".2f") == "2.00 [2.00, 2.00]"  # every seed reached: no count
    assert parity._mlperf_text(full) == "10.0"
    [document] = json.loads(json.dumps(parity.to_json([group]), default=str))
    assert set(document["backends"][0]) == {"label", "line", "data", "runs", "accuracy", "epochs", "seconds",
                                            "mlperf"}


def test_the_parity_command_passes_on_every_option(tmp_path):
    write_result(tmp_path, seeded_run("jax", JAX, seconds=[10.0, 11.0, 12.0, 10.5, 11.5]))
    write_result(tmp_path, seeded_run("tensorflow", TF, seconds=[10.2, 11.1, 12.4, 10.1, 11.6]))
    found = results.results_of(results.load([tmp_path])[0])
    text = parity.render(found, fmt_name="json", sd_bound=0.02, time_margin=0.5,
                         levels=stats.Levels(0.01, 0.02, 0.05, "look 2 of 3"))
    assert text.startswith('{\n  "parity": [\n    {\n')  # indented by 2
    [document] = json.loads(text)["parity"]
    assert document["sd_bound"] == 0.02 and document["time_margin"] == 0.5 and document["levels"]["look"] == (
        "look 2 of 3")
    assert "at a paired SD ≤ 2 pt (stated)" in parity.render(found, sd_bound=0.02)
    [group] = parity.analyze(found, levels=stats.Levels(0.01, 0.02, 0.05, "look 2 of 3"))
    assert group.levels.look == "look 2 of 3"
    seconds = next(v for v in group.pairs if v.metric == "seconds")
    assert seconds.verdict.endswith("]x")  # a ratio interval


def test_lines_are_ordered_by_their_own_text_not_their_files(tmp_path):
    write_result(tmp_path, seeded_run("torch", JAX), name="a.json")
    write_result(tmp_path, seeded_run("jax", JAX), name="z.json")
    [group] = parity.analyze(results.results_of(results.load([tmp_path])[0]))
    assert [b.label.split()[0] for b in group.backends] == ["jax", "torch"]
