"""Statistics with known answers: intervals, Welch and Mann-Whitney p, Holm, the verdict."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.report.stats import (Interval, VerdictRule, difference_interval, holm, mann_whitney_p, mann_whitney_possible,
                                  mean_interval, verdict, welch_p)


def test_t_interval_of_a_known_sample():
    iv = mean_interval([0.60, 0.64, 0.68])
    # t_{0.975, 2} = 4.302652729911275, s = 0.04, n = 3
    assert iv.method == "t" and iv.n == 3 and iv.mean == pytest.approx(0.64)
    assert iv.half_width == pytest.approx(4.302652729911275 * 0.04 / math.sqrt(3))
    assert iv.std == pytest.approx(0.04)


def test_bootstrap_for_five_or_more_and_reproducible():
    values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    a, b = mean_interval(values, n_boot=4000), mean_interval(values, n_boot=4000)
    assert a.method == "bootstrap" and a == b  # seeded: the same report twice gives the same numbers
    # The percentile bootstrap of a mean is close to mean +- 1.96 * s / sqrt(n) * sqrt((n-1)/n) for this sample.
    normal = 1.96 * np.std(values, ddof=0) / math.sqrt(len(values))
    assert a.low < 0.55 < a.high and a.half_width == pytest.approx(normal, rel=0.12)
    assert mean_interval([0.5] * 6).low == mean_interval([0.5] * 6).high == 0.5
    assert mean_interval(values, method="t").method == "t"


def test_degenerate_samples():
    assert mean_interval([]).n == 0 and math.isnan(mean_interval([]).mean)
    one = mean_interval([0.3, None, float("nan")])
    assert one.n == 1 and one.mean == 0.3 and math.isnan(one.low)
    with pytest.raises(ValueError, match="method"):
        mean_interval([1, 2, 3], method="jackknife")


def test_welch_p_value_known():
    a, b = [1, 2, 3, 4], [2, 4, 6, 8, 10]
    # By hand: va = (5/3)/4, vb = 10/5, t = -3.5 / sqrt(va + vb), Welch-Satterthwaite df.
    va, vb = (5 / 3) / 4, 10 / 5
    t = -3.5 / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 4)
    assert df == pytest.approx(5.5208, abs=1e-4)
    assert welch_p(a, b) == pytest.approx(2 * sps.t.sf(abs(t), df), rel=1e-9)
    assert welch_p(a, b) == pytest.approx(0.0691, abs=1e-4)
    assert math.isnan(welch_p([1], [1, 2])) and welch_p([1, 1], [1, 1]) == 1.0


def test_difference_interval_is_welch_for_small_n():
    a, b = [1, 2, 3, 4], [2, 4, 6, 8, 10]
    d = difference_interval(a, b)
    va, vb = (5 / 3) / 4, 10 / 5
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 4)
    half = sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert d.method == "t" and d.mean == pytest.approx(-3.5) and d.high - d.mean == pytest.approx(half)
    big = difference_interval(list(range(10)), [x + 5 for x in range(10)])
    assert big.method == "bootstrap" and big.mean == pytest.approx(-5) and big.low < -5 < big.high


def test_mann_whitney_only_where_n_can_reach_significance():
    assert not mann_whitney_possible(3, 3)  # smallest two-sided p = 2 / C(6, 3) = 0.1
    assert mann_whitney_possible(4, 4)  # 2 / 70 = 0.029
    assert math.isnan(mann_whitney_p([1, 2, 3], [4, 5, 6]))
    # Fully separated 4 vs 4: the exact two-sided p is 2 / 70.
    assert mann_whitney_p([1, 2, 3, 4], [5, 6, 7, 8]) == pytest.approx(2 / 70)


def test_holm_adjustment_known():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(1*0.04, 0.06)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.5, float("nan"), 0.9])
    assert adjusted[0] == pytest.approx(1.0) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(1.0)


def _diff(low, high):
    return Interval((low + high) / 2, low, high, 3, 0.0, "t")


@pytest.mark.parametrize("diff, p, n, expected", [
    (_diff(-0.005, 0.008), 0.6, 3, "matches"),
    (_diff(-0.005, 0.012), 0.6, 3, "inconclusive (CI wider than ±0.01)"),
    (_diff(0.02, 0.05), 0.01, 3, "better"),
    (_diff(-0.05, -0.02), 0.01, 3, "worse"),
    (_diff(-0.005, 0.005), 0.6, 2, "inconclusive (n too small)"),
    (_diff(0.002, 0.004), 0.001, 3, "better"),  # significant even if tiny: not "matches"
])
def test_verdict_thresholds(diff, p, n, expected):
    assert verdict(diff, p, n, 3) == expected


def test_verdict_thresholds_are_parameters():
    wide = _diff(-0.005, 0.012)
    assert verdict(wide, 0.6, 3, 3, VerdictRule(margin=0.02)) == "matches"
    assert verdict(_diff(0.02, 0.05), 0.04, 3, 3, VerdictRule(alpha=0.01)) == "inconclusive (CI wider than ±0.01)"
    assert verdict(_diff(-0.005, 0.005), 0.6, 3, 3, VerdictRule(min_n=4)) == "inconclusive (n too small)"
    assert verdict(_diff(-0.05, -0.02), 0.01, 3, 3, higher_is_better=False) == "better"  # e.g. time to target
