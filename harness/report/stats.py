"""Statistics across seeds: confidence intervals, tests against a baseline, Holm, the verdict.

Choices (stated in every table's caption):

* Interval of a mean: a percentile bootstrap (`n_boot` resamples, seeded, so a report is
  reproducible) for n >= `BOOTSTRAP_MIN_N` (5), because it does not assume normality, which
  accuracies near a ceiling or time-to-target values do not follow; the t-interval for smaller n,
  where a bootstrap has too few distinct resamples to mean anything (with n = 3 there are 10).
* Difference to the baseline: Welch's t-interval of the difference of means for small n, the
  percentile bootstrap of the difference (each group resampled on its own) when both n >= 5.
* Tests: Welch's t-test (unequal variances) always; Mann-Whitney U where n allows it to reach
  significance at all (the smallest two-sided p it can give, 2 / C(n1 + n2, n1), is below alpha;
  with 3 vs 3 it is 0.1, so it is not run). Holm's step-down correction across the comparisons
  of one table, for each test separately.
* Verdict (`verdict`): "matches" when the difference's CI lies inside +-margin and the Holm-adjusted
  Welch p is not significant; "better"/"worse" when it is significant; "inconclusive (n too
  small)" below `min_n` runs on either side; otherwise "inconclusive (CI wider than +-margin)".
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

BOOTSTRAP_MIN_N = 5
DEFAULT_BOOT = 2000
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Interval:
    """Mean of a sample with a confidence interval; `method` is "t", "bootstrap" or "n=1"."""

    mean: float
    low: float
    high: float
    n: int
    std: float
    method: str

    @property
    def half_width(self) -> float:
        """Half the interval's width (the "+-" of a symmetric interval)."""
        return (self.high - self.low) / 2


def _clean(values) -> np.ndarray:
    a = np.asarray([v for v in values if v is not None], dtype=float)
    return a[np.isfinite(a)]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@functools.lru_cache(maxsize=64)
def _resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """The bootstrap's (n_boot, n) index matrix; the same for every metric of one n and seed, so
    it is drawn once (a report of 10,000 runs would otherwise spend seconds drawing it again)."""
    indices = _rng(seed).integers(0, n, size=(n_boot, n))
    indices.setflags(write=False)
    return indices


def mean_interval(values, level: float = 0.95, *, method: str = "auto", n_boot: int = DEFAULT_BOOT,
                  seed: int = DEFAULT_SEED) -> Interval:
    """Mean and `level` confidence interval of `values` (None/NaN dropped).

    method "auto": bootstrap for n >= 5, else t; "t" or "bootstrap" force one. n = 0 gives NaNs,
    n = 1 the value with a NaN interval (method "n=1").
    """
    a = _clean(values)
    n = len(a)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan, "none")
    mean = float(a.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1, math.nan, "n=1")
    std = float(a.std(ddof=1))
    use = ("bootstrap" if n >= BOOTSTRAP_MIN_N else "t") if method == "auto" else method
    if use == "t":
        half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
        return Interval(mean, mean - half, mean + half, n, std, "t")
    if use != "bootstrap":
        raise ValueError(f"method must be 'auto', 't' or 'bootstrap', got {method!r}")
    means = a[_resample_indices(n, n_boot, seed)].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Interval(mean, float(low), float(high), n, std, "bootstrap")


def difference_interval(a, b, level: float = 0.95, *, method: str = "auto", n_boot: int = DEFAULT_BOOT,
                        seed: int = DEFAULT_SEED) -> Interval:
    """mean(a) - mean(b) with a `level` CI: Welch's t-interval, or the percentile bootstrap
    (each sample resampled on its own) when both n >= 5 ("auto")."""
    a, b = _clean(a), _clean(b)
    na, nb = len(a), len(b)
    if na == 0 or nb == 0:
        return Interval(math.nan, math.nan, math.nan, min(na, nb), math.nan, "none")
    diff = float(a.mean() - b.mean())
    if na < 2 or nb < 2:
        return Interval(diff, math.nan, math.nan, min(na, nb), math.nan, "n=1")
    use = ("bootstrap" if min(na, nb) >= BOOTSTRAP_MIN_N else "t") if method == "auto" else method
    va, vb = a.var(ddof=1) / na, b.var(ddof=1) / nb
    se = math.sqrt(va + vb)
    if use == "t":
        df = welch_df(va, vb, na, nb)
        half = float(stats.t.ppf(0.5 + level / 2, df)) * se if df > 0 else (0.0 if se == 0 else math.inf)
        return Interval(diff, diff - half, diff + half, min(na, nb), se, "t")
    rng = _rng(seed)
    boot = a[rng.integers(0, na, size=(n_boot, na))].mean(axis=1) - b[rng.integers(0, nb, size=(n_boot, nb))].mean(axis=1)
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return Interval(diff, float(low), float(high), min(na, nb), se, "bootstrap")


def welch_df(va: float, vb: float, na: int, nb: int) -> float:
    """Welch-Satterthwaite degrees of freedom from the squared standard errors va, vb."""
    denom = va**2 / (na - 1) + vb**2 / (nb - 1)
    return (va + vb) ** 2 / denom if denom > 0 else 0.0


def welch_p(a, b) -> float:
    """Two-sided p-value of Welch's t-test (NaN below 2 values a side; 1.0 for two equal constants)."""
    a, b = _clean(a), _clean(b)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if a.var(ddof=1) == 0 and b.var(ddof=1) == 0:
        return 1.0 if a.mean() == b.mean() else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def mann_whitney_possible(na: int, nb: int, alpha: float = 0.05) -> bool:
    """Whether a two-sided Mann-Whitney U test of na vs nb values can reach p < alpha at all."""
    return na >= 1 and nb >= 1 and 2 / math.comb(na + nb, na) < alpha


def mann_whitney_p(a, b, alpha: float = 0.05) -> float:
    """Two-sided Mann-Whitney U p-value, NaN where n cannot reach significance (see module doc)."""
    a, b = _clean(a), _clean(b)
    if not mann_whitney_possible(len(a), len(b), alpha):
        return math.nan
    return float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def holm(pvalues) -> list[float]:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and are not counted)."""
    p = [float(v) if v is not None else math.nan for v in pvalues]
    valid = sorted((v, i) for i, v in enumerate(p) if not math.isnan(v))
    m = len(valid)
    out = [math.nan] * len(p)
    running = 0.0
    for rank, (v, i) in enumerate(valid):
        running = max(running, min(1.0, (m - rank) * v))
        out[i] = running
    return out


@dataclass(frozen=True)
class VerdictRule:
    """The thresholds of the verdict column (defaults are stated in every caption)."""

    margin: float = 0.01  # metric units: 0.01 = 1 accuracy point
    alpha: float = 0.05
    min_n: int = 3  # fewer runs on either side: "inconclusive (n too small)"


def verdict(diff: Interval, p_adjusted: float, n_pair: int, n_base: int, rule: VerdictRule = VerdictRule(),
            higher_is_better: bool = True) -> str:
    """'matches', 'better', 'worse', 'inconclusive (n too small)' or 'inconclusive (CI wider than ...)'."""
    if n_pair < rule.min_n or n_base < rule.min_n or math.isnan(diff.mean):
        return "inconclusive (n too small)"
    if not math.isnan(p_adjusted) and p_adjusted < rule.alpha:
        return "better" if (diff.mean > 0) == higher_is_better else "worse"
    if not math.isnan(diff.low) and -rule.margin <= diff.low and diff.high <= rule.margin:
        return "matches"
    return f"inconclusive (CI wider than ±{rule.margin:g})"


__all__ = ["BOOTSTRAP_MIN_N", "Interval", "VerdictRule", "difference_interval", "holm", "mann_whitney_p",
           "mann_whitney_possible", "mean_interval", "verdict", "welch_p"]
