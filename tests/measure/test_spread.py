"""Tests for harness.measure.spread: one summary, hand-computed, agreeing with the statistics module."""
import statistics

import numpy as np
import pytest

from harness.measure import SUMMARY_KEYS, iqr, median, median_interval, median_interval_coverage, summarize


def test_summarize_hand_computed():
    # Linear interpolation: q25 of [1, 2, 3, 4] is at rank 0.75 -> 1.75; q75 -> 3.25; p10 -> 1.3.
    s = summarize([4.0, 1.0, 3.0, 2.0])
    assert s == pytest.approx({"median": 2.5, "iqr": 1.5, "q25": 1.75, "q75": 3.25, "p10": 1.3, "p90": 3.7,
                               "min": 1.0, "max": 4.0, "mean": 2.5, "n": 4})
    assert tuple(s) == SUMMARY_KEYS


def test_summarize_single_and_empty():
    assert summarize([7.0]) == {"median": 7.0, "iqr": 0.0, "q25": 7.0, "q75": 7.0, "p10": 7.0, "p90": 7.0,
                                "min": 7.0, "max": 7.0, "mean": 7.0, "n": 1}
    empty = summarize([])
    assert empty["n"] == 0 and all(empty[k] is None for k in SUMMARY_KEYS if k != "n")


def test_keys_are_a_superset_of_what_records_and_benchmarks_stored():
    # Run records (train/timing.py before the merge) and benchmark documents (bench/timing.py)
    # stored these keys; readers such as metrics.speed.step_ms.median/iqr must keep working.
    assert {"median", "iqr", "p10", "p90", "mean", "n"} <= set(SUMMARY_KEYS)
    assert {"median", "iqr", "q25", "q75", "min", "n"} <= set(SUMMARY_KEYS)


def test_quartiles_agree_with_the_inclusive_method_of_the_statistics_module():
    values = [0.3, 9.1, 2.2, 4.4, 4.4, 7.0, 1.5]
    q25, q50, q75 = statistics.quantiles(values, n=4, method="inclusive")
    s = summarize(values)
    assert (s["q25"], s["median"], s["q75"]) == pytest.approx((q25, q50, q75))
    assert iqr(values) == pytest.approx(q75 - q25) == pytest.approx(s["iqr"])
    assert median(values) == s["median"] == 4.4


def test_iqr_and_median_edge_cases():
    assert iqr([1.0, 2.0, 3.0, 4.0, 5.0]) == 2.0
    assert iqr([3.0]) == 0.0
    with pytest.raises(ValueError, match="no samples"):
        median([])


def test_median_interval_takes_the_sign_test_order_statistics():
    """(x_(j), x_(n+1-j)) with j the largest whose coverage 1 - 2 P(B <= j-1) is >= the level."""
    from scipy.stats import binom

    for level in (0.9, 0.95, 0.99):
        for n in range(1, 61):
            lo, hi = median_interval(list(range(n, 0, -1)), level)  # given unsorted
            j = int(lo)
            assert hi == n + 1 - j
            assert median_interval_coverage(n, level) == pytest.approx(1 - 2 * binom.cdf(j - 1, n, 0.5))
            widest = j == 1 and 1 - 2 * binom.cdf(0, n, 0.5) < level
            assert widest or 1 - 2 * binom.cdf(j - 1, n, 0.5) >= level - 1e-12
            if j < n // 2:  # one step narrower would cover too little
                assert 1 - 2 * binom.cdf(j, n, 0.5) < level


def test_median_interval_covers_the_median_of_a_skewed_distribution():
    """Monte Carlo: lognormal samples (skewed like per-round time ratios), n = 25: the interval
    holds the true median (1.0) in at least 95 % of draws (exact coverage 0.957)."""
    rng = np.random.default_rng(0)
    hits = sum(lo <= 1.0 <= hi for lo, hi in (median_interval(rng.lognormal(0.0, 0.5, 25)) for _ in range(4000)))
    assert 0.945 <= hits / 4000 <= 0.970


def test_median_interval_rejects_bad_input():
    with pytest.raises(ValueError, match="no samples"):
        median_interval([])
    with pytest.raises(ValueError, match="level"):
        median_interval([1.0, 2.0], level=1.0)
    assert median_interval([3.0]) == (3.0, 3.0)
