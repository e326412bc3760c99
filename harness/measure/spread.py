"""The one spread summary of repeated measurements (step times, benchmark samples, anything).

Benchmarks and training records both summarize through `summarize`, with one set of keys, so a
benchmark and a run record report the same statistic for the same samples. Percentiles use
linear interpolation between order statistics (numpy's default, the same as
`statistics.quantiles(method="inclusive")`), which is exact for small samples too.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

#: The keys of every `summarize` result, in order. q25/q75 are the quartiles (iqr = q75 - q25),
#: p10/p90 the tails; records written before the merge carry subsets of these, so readers stay valid.
SUMMARY_KEYS: tuple[str, ...] = ("median", "iqr", "q25", "q75", "p10", "p90", "min", "max", "mean", "n")


def summarize(samples: Sequence[float]) -> dict:
    """{"median", "iqr", "q25", "q75", "p10", "p90", "min", "max", "mean", "n"} of `samples` (any unit;
    the output keeps it). IQR = q75 - q25. With no samples every statistic is None and n is 0."""
    values = np.asarray(list(samples), dtype=np.float64)
    if values.size == 0:
        return {key: (0 if key == "n" else None) for key in SUMMARY_KEYS}
    p10, q25, p50, q75, p90 = (float(v) for v in np.percentile(values, [10, 25, 50, 75, 90]))
    return {
        "median": p50, "iqr": q75 - q25, "q25": q25, "q75": q75, "p10": p10, "p90": p90,
        "min": float(values.min()), "max": float(values.max()), "mean": float(values.mean()), "n": int(values.size),
    }


def median(values: Sequence[float]) -> float:
    """The median (the statistic every ratio is built from); `values` must not be empty."""
    if len(values) == 0:
        raise ValueError("median of no samples")
    return float(np.median(np.asarray(values, dtype=np.float64)))


def iqr(values: Sequence[float]) -> float:
    """Interquartile range q75 - q25 (0 for fewer than two values), as in `summarize`."""
    if len(values) < 2:
        return 0.0
    q25, q75 = np.percentile(np.asarray(values, dtype=np.float64), [25, 75])
    return float(q75 - q25)


def _order_index(n: int, level: float) -> int:
    """j of `median_interval` for n values: the largest j <= n // 2 with P(B <= j - 1) <= (1 - level) / 2,
    B ~ Binomial(n, 1/2); at least 1."""
    if not 0 < level < 1:
        raise ValueError(f"median_interval: level must be in (0, 1), got {level}")
    tail = (1 - level) / 2
    j, cdf = 0, 0.0  # cdf = P(B <= j - 1) for the next j
    while j < n // 2:
        cdf_next = cdf + math.comb(n, j) / 2 ** n
        if cdf_next > tail:
            break
        j, cdf = j + 1, cdf_next
    return max(j, 1)


def median_interval_coverage(n: int, level: float = 0.95) -> float:
    """The coverage `median_interval` achieves for n values: 1 - 2 P(B <= j - 1), at least `level`
    except where the interval fell back to (min, max) (n < 6 at 0.95: 1 - 2^(1-n))."""
    if n < 1:
        raise ValueError("median_interval_coverage needs n >= 1")
    j = _order_index(n, level)
    return 1 - 2 * sum(math.comb(n, i) for i in range(j)) / 2 ** n


def median_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median: (x_(j), x_(n+1-j)) of the sorted values.

    For n independent values the population median lies between the j-th smallest and the j-th
    largest with probability 1 - 2 P(B <= j - 1), B ~ Binomial(n, 1/2), whatever the distribution
    (the sign-test interval; e.g. Hollander & Wolfe, Nonparametric Statistical Methods, 3.6). j is
    the largest with coverage >= `level`. Where even (min, max) covers less (n < 6 at 0.95: coverage
    1 - 2^(1-n); `median_interval_coverage`), the interval is (min, max). Used for per-round time
    ratios, whose noise is skewed (a burst of foreign load makes one round slow), where a
    t-interval would mislead. It assumes independent values: rounds on a shared host drift
    together over seconds, so for them the coverage is nominal, an upper bound.
    """
    x = sorted(float(v) for v in values)
    if not x:
        raise ValueError("median_interval of no samples")
    j = _order_index(len(x), level)
    return x[j - 1], x[len(x) - j]


__all__ = ["SUMMARY_KEYS", "iqr", "median", "median_interval", "median_interval_coverage", "summarize"]
