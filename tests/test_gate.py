"""bench.gate: the latency gate's rule on process medians (refusals, Welch per line, Holm, threshold)."""

import numpy as np
import pytest

from bench import gate, stats


def test_decide_applies_holm_per_run_and_the_threshold():
    ratio = np.array([[1.10, 1.10, 1.00], [1.01, 1.10, 0.90]])
    p_slower = np.array([[0.01, 0.04, 0.5], [0.001, 0.02, 0.99]])
    p_faster = 1 - p_slower
    decided = gate.decide(ratio, p_slower, p_faster, threshold=0.03)
    # Run 1: Holm's 0.03 and 0.08: only the first line counts, the second is past the threshold but
    # not significant. Run 2: 0.003 (under the threshold), then 0.04; its third line is 10% faster
    # with p (faster) 0.01, Holm's 0.03.
    assert decided.p_slower[0] == pytest.approx([0.03, 0.08, 0.5])
    assert decided.regression.tolist() == [[True, False, False], [False, True, False]]
    assert decided.within_noise.tolist() == [[False, True, False], [False, False, False]]
    assert decided.faster.tolist() == [[False, False, False], [False, False, True]]
    assert decided.p_faster[1, 2] == pytest.approx(3 * 0.01)


def test_decide_leaves_refused_lines_out_of_holm():
    ratio, p = np.array([1.10, 1.10]), np.array([0.03, 0.03])
    assert gate.decide(ratio, p, 1 - p, 0.0).regression.tolist() == [False, False]  # 0.06 each
    decided = gate.decide(ratio, p, 1 - p, 0.0, gated=np.array([True, False]))
    assert decided.regression.tolist() == [True, False] and np.isnan(decided.p_slower[1])


def test_faster_is_mirrored_and_needs_significance():
    decided = gate.decide(np.array([0.90, 0.90]), np.array([0.999, 0.9]), np.array([0.001, 0.1]), 0.03)
    assert decided.faster.tolist() == [True, False] and decided.within_noise.tolist() == [False, True]
    assert not decided.regression.any()


def test_judge_refuses_what_it_cannot_gate_and_says_why():
    rng = np.random.default_rng(0)
    medians = lambda n, scale=1.0: list(scale * np.exp(0.01 * rng.standard_normal(n)))
    modes = list(np.where(np.arange(12) < 4, 330.0, 400.0))
    lines = [gate.Line(medians(3), medians(3, 1.2)), gate.Line(medians(1), medians(3)),
             gate.Line(modes, modes[::-1])]
    slowed, few, bimodal = gate.judge(lines, threshold=0.03)
    assert slowed.verdict == gate.REGRESSION and slowed.gated and slowed.regression
    assert slowed.p_slower == pytest.approx(slowed.test.p_slower)  # one gated line: Holm changes nothing
    assert few.verdict == "cannot gate: 1 vs 3 processes, needs 3 a side (--repeat 3)" and not few.gated
    assert bimodal.verdict.startswith("cannot gate: the process medians fall into two modes")
    assert bimodal.modes is not None and bimodal.test is None


def test_detects_shrinks_with_processes_and_calibration():
    rng = np.random.default_rng(1)
    draw = lambda n: list(np.exp(0.02 * rng.standard_normal(n)))
    three, eight = gate.judge([gate.Line(draw(3), draw(3)), gate.Line(draw(8), draw(8))], threshold=0.0)
    assert eight.detects < three.detects
    calibrated, = gate.judge([gate.Line(draw(3), draw(3), stats.ProcessNoise(0.02**2, 30))], threshold=0.0)
    assert calibrated.detects < three.detects


def test_judge_checks_its_arguments():
    with pytest.raises(ValueError):
        gate.judge([], threshold=-0.1)
    assert gate.judge([]) == []


def test_the_threshold_and_alpha_are_strict_bounds():
    # 1.25 and 0.75 are exactly 1 ± 0.25: at the threshold is not past it.
    at = gate.decide(np.array([1.25, 0.75]), np.array([0.001, 0.999]), np.array([0.999, 0.001]), 0.25)
    assert not at.regression.any() and not at.faster.any() and not at.within_noise.any()
    past = gate.decide(np.array([1.26, 0.74]), np.array([0.001, 0.999]), np.array([0.999, 0.001]), 0.25)
    assert past.regression.tolist() == [True, False] and past.faster.tolist() == [False, True]
    # One gated line: Holm leaves its p as it is, and a p of exactly alpha does not reject.
    one = gate.decide(np.array([1.5]), np.array([0.05]), np.array([0.05]), 0.0)
    assert not one.regression.any() and one.within_noise.tolist() == [True]
    other = gate.decide(np.array([0.5]), np.array([0.05]), np.array([0.05]), 0.0)
    assert not other.faster.any() and other.within_noise.tolist() == [True]


def test_gated_may_be_given_as_zeros_and_ones():
    ratio, p = np.array([1.10, 1.10]), np.array([0.03, 0.03])
    decided = gate.decide(ratio, p, 1 - p, 0.0, gated=[1, 0])
    assert decided.regression.tolist() == [True, False] and np.isnan(decided.p_slower[1])
    assert decided.p_slower[0] == pytest.approx(0.03)


def test_two_modes_with_the_fewest_processes_are_called_two_modes():
    # 3 processes a side is enough to gate: the refusal is for the two modes, and says what to do.
    baseline, current = [330.0, 400.0, 400.0], [330.0, 330.0, 400.0, 400.0, 400.0, 330.0, 330.0, 400.0, 400.0]
    reason, modes, reasons = gate.refusal(baseline, current)
    assert reason == ("cannot gate: the process medians fall into two modes (see note); gate single-threaded "
                      "(--threads 1) or find the cause")
    assert reasons == ((gate.TWO_MODES, reason.removeprefix("cannot gate: ")),)
    assert modes.sides == ((1, 330.0, 2, 400.0), (4, 330.0, 5, 400.0))


@pytest.mark.parametrize(("threshold", "alpha"), [(-0.01, 0.05), (0.0, 0.0), (0.0, 1.0), (0.0, 1.5)])
def test_judge_refuses_a_negative_threshold_or_an_alpha_outside_0_and_1(threshold, alpha):
    with pytest.raises(ValueError, match=r"^threshold must be >= 0 and alpha between 0 and 1$"):
        gate.judge([], threshold=threshold, alpha=alpha)


def test_judge_holds_every_line_to_its_alpha_and_confidence():
    rng = np.random.default_rng(3)
    draw = lambda n, scale=1.0: list(scale * np.exp(0.02 * rng.standard_normal(n)))
    lines = [gate.Line(draw(4), draw(4, 1.08)), gate.Line(draw(4), draw(4, 1.0))]
    strict, loose = gate.judge(lines, threshold=0.0, alpha=0.001), gate.judge(lines, threshold=0.0, alpha=0.2)
    assert 0.001 < strict[0].p_slower < 0.05  # Holm's p of the slowed line: past 0.001, under the default 0.05
    assert strict[0].verdict == gate.WITHIN_NOISE and loose[0].verdict == gate.REGRESSION
    assert strict[0].p_faster == pytest.approx(stats.holm([j.test.p_faster for j in strict])[0])
    assert strict[0].test.confidence == pytest.approx(0.999)
    assert gate.judge(lines, threshold=0.0, confidence=0.8)[0].test.confidence == 0.8
    # Each gated line's detectable slowdown is at Holm's level for one slowed line among the 2: alpha / 2.
    assert strict[1].detects == pytest.approx(stats.detectable_slowdown(strict[1].test, 0.001 / 2, 0.0, 0.8))


def test_a_line_run_in_blocks_gets_the_paired_test():
    # The machine drifts 6% from block to block; each current process is about 4% slower than its block's baseline.
    base = [0.100, 0.110, 0.094, 0.108, 0.097, 0.109, 0.095]
    cur = [b * f for b, f in zip(base, [1.040, 1.045, 1.035, 1.040, 1.042, 1.038, 1.041], strict=True)]
    [paired] = gate.judge([gate.Line(base, cur, paired=True)])
    [welch] = gate.judge([gate.Line(base, cur)])
    assert paired.test.paired and paired.regression and paired.verdict == gate.REGRESSION
    assert not welch.test.paired and not welch.regression
    # The line's interval is at the confidence asked for.
    [narrow] = gate.judge([gate.Line(base, cur, paired=True)], confidence=0.80)
    assert narrow.test.confidence == 0.80 and narrow.test.high - narrow.test.low < paired.test.high - paired.test.low
