"""The one spread summary of repeated measurements (step times, benchmark samples, anything).

Benchmarks and training records both summarize through `summarize`, with one set of keys, so a
benchmark and a run record report the same statistic for the same samples. Percentiles use
linear interpolation between order statistics (numpy's default, the same as
`statistics.quantiles(method="inclusive")`), which is exact for small samples too.
"""
from __future__ import annotations

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


__all__ = ["SUMMARY_KEYS", "iqr", "median", "summarize"]
