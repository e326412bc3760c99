"""Few-Bit Backward (Novikov et al. 2023, arXiv 2202.00441): the best piecewise-constant
approximation of a derivative with 2^b levels, so backward needs only b bits per element.

Problem: choose borders s_1 < ... < s_{k-1} (k = 2^b) and levels q_1..q_k minimising

    E(q) = integral (g(x) - q(x))^2 p(x) dx,   q(x) = q_i on (s_{i-1}, s_i],

with p the standard normal density (pre-activations are roughly normalised). For fixed borders
each level is the p-weighted mean of g over its interval; the borders are then found exactly, on
a fine grid, by dynamic programming over contiguous segments (O(k n^2), vectorised). More levels
can always copy a fit with fewer, so the error never increases with b.

Fits are cached in memory and on disk (`$HARNESS_CACHE_DIR`, default ~/.cache/harness), keyed
by the rule, its parameters and b: a sweep fits each (rule, params, b) once.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

GRID_POINTS = 960  # the n x n float32 DP matrix (3.7 MB) stays in cache; 1200 points ran 15x slower
FIT_VERSION = 4  # bump when the fitting algorithm changes: it invalidates disk caches
GRID_RANGE = 6.0  # grid on [-6, 6]: N(0,1) mass outside is ~2e-9
_MEMORY: dict[str, "FewBitFit"] = {}


@dataclass(frozen=True)
class FewBitFit:
    """A fitted piecewise-constant rule: k = 2^bits levels and k - 1 borders."""

    bits: int
    borders: Tensor  # (k-1,), float64, increasing
    levels: Tensor  # (k,), float64
    rmse: float  # sqrt(E / integral p), on the grid

    def __call__(self, x: Tensor) -> Tensor:
        """q(x), the fitted approximation."""
        codes = torch.bucketize(x, self.borders.to(x.dtype))
        return self.levels.to(x.dtype)[codes]


def _grid(g_fn: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
    """Grid points and N(0,1) quadrature weights, adapted to g.

    A third of the points are uniform on [-6, 6], a third are N(0,1) quantiles (where the
    weight is), and a third are quantiles of g's total variation (where g changes), so a
    narrow surrogate such as fast_sigmoid (k = 25, width ~0.04) gets its borders placed finely.
    """
    third = GRID_POINTS // 3
    uniform = torch.linspace(-GRID_RANGE, GRID_RANGE, third, dtype=torch.float64)
    probs = (torch.arange(third, dtype=torch.float64) + 0.5) / third
    normal = torch.special.ndtri(probs)
    fine = torch.linspace(-GRID_RANGE, GRID_RANGE, 60001, dtype=torch.float64)
    variation = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum((g_fn(fine).double().diff()).abs(), 0)])
    if variation[-1] > 0:
        levels = (torch.arange(third, dtype=torch.float64) + 0.5) / third * variation[-1]
        varied = fine[torch.searchsorted(variation, levels).clamp(max=fine.numel() - 1)]
    else:
        varied = uniform
    x = torch.unique(torch.cat([uniform, normal, varied]))  # sorted
    # Each point stands for the cell between the midpoints to its neighbours.
    mids = torch.cat([x[:1], (x[1:] + x[:-1]) / 2, x[-1:]])
    cdf = torch.special.ndtr(mids)
    cdf[0], cdf[-1] = 0.0, 1.0
    return x, cdf[1:] - cdf[:-1]


def fit_piecewise_constant(g: Tensor, x: Tensor, w: Tensor, k: int) -> FewBitFit:
    """Optimal k-segment piecewise-constant fit of samples g(x) with weights w (exact DP)."""
    n = g.numel()
    k = min(k, n)
    zero = torch.zeros(1, dtype=torch.float64)
    W = torch.cat([zero, torch.cumsum(w, 0)])
    S1 = torch.cat([zero, torch.cumsum(w * g, 0)])
    S2 = torch.cat([zero, torch.cumsum(w * g * g, 0)])
    # cost[i, j]: squared error of one segment covering grid points i..j-1 (i < j).
    dW = W[None, :] - W[:, None]
    dS1 = S1[None, :] - S1[:, None]
    dS2 = S2[None, :] - S2[:, None]
    cost = dS2 - dS1 * dS1 / dW.clamp_min(1e-300)
    valid = torch.triu(torch.ones(n + 1, n + 1, dtype=torch.bool), diagonal=1)
    # The DP runs in float32 (half the memory traffic of its k passes over an n x n matrix);
    # the reported error is recomputed in float64 from the chosen borders.
    cost = torch.where(valid, cost.clamp_min(0.0), torch.inf).float()
    best = cost[0].clone()  # best[j]: error of covering points 0..j-1 with 1 segment
    total = torch.empty_like(cost)
    argmins = []
    for _ in range(1, k):
        torch.add(best[:, None], cost, out=total)  # prev end i, new segment i..j-1
        best, arg = total.min(dim=0)
        argmins.append(arg)
    # Backtrack segment starts from the end point n.
    ends = [n]
    for arg in reversed(argmins):
        ends.append(int(arg[ends[-1]]))
    starts = sorted(ends[1:])
    bounds = [0, *starts, n]
    levels, borders = [], []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        ws = W[hi] - W[lo]
        levels.append(float((S1[hi] - S1[lo]) / ws) if ws > 0 else float(g[lo:hi].mean()))
    for s in starts:
        borders.append(float((x[s - 1] + x[s]) / 2))
    error = sum(float(S2[hi] - S2[lo]) - (float(S1[hi] - S1[lo]) ** 2 / float(W[hi] - W[lo]) if W[hi] > W[lo] else 0.0) for lo, hi in zip(bounds[:-1], bounds[1:]))
    rmse = math.sqrt(max(error, 0.0) / float(W[-1]))
    return FewBitFit(bits=max(1, math.ceil(math.log2(len(levels)))), borders=torch.tensor(borders, dtype=torch.float64), levels=torch.tensor(levels, dtype=torch.float64), rmse=rmse)


def refine_borders(fit: "FewBitFit", x: Tensor, g_fn: Callable[[Tensor], Tensor], iterations: int = 60) -> Tensor:
    """Move each border from its grid midpoint to where g crosses the mean of the two levels
    beside it: the stationarity condition of the squared error in the border. Matters at jumps
    (NeLU at 0, rectangular ends), where a border off by one grid cell costs visibly."""
    borders = fit.borders.clone()
    if borders.numel() == 0:
        return borders
    idx = torch.searchsorted(x, borders).clamp(1, x.numel() - 1)
    lo, hi = x[idx - 1].clone(), x[idx].clone()
    target = (fit.levels[:-1] + fit.levels[1:]) / 2
    h_lo = g_fn(lo).double() - target
    h_hi = g_fn(hi).double() - target
    crossing = (h_lo * h_hi) < 0
    for _ in range(iterations):
        mid = (lo + hi) / 2
        h_mid = g_fn(mid).double() - target
        left = (h_lo * h_mid) <= 0
        hi = torch.where(left, mid, hi)
        lo = torch.where(left, lo, mid)
        h_lo = torch.where(left, h_lo, h_mid)
    refined = torch.where(crossing, (lo + hi) / 2, borders)
    return torch.sort(refined).values


def _cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE_DIR", Path.home() / ".cache" / "harness")) / "fewbit"


def fit_rule(key: str, g_fn: Callable[[Tensor], Tensor], bits: int) -> FewBitFit:
    """Fit (or load the cached fit of) the rule `g_fn` with 2^bits levels.

    `key` identifies the rule and its parameters; it must change whenever g_fn does.
    """
    # The key also hashes g itself, sampled finely: editing a rule's formula (or anything the
    # name and parameters do not capture) can never return a stale fit from the disk cache.
    probe = g_fn(torch.linspace(-GRID_RANGE, GRID_RANGE, 4097, dtype=torch.float64)).to(torch.float64)
    content = hashlib.sha256(probe.numpy().tobytes()).hexdigest()
    full_key = hashlib.sha256(json.dumps([key, content, bits, GRID_POINTS, GRID_RANGE, FIT_VERSION]).encode()).hexdigest()[:20]
    if full_key in _MEMORY:
        return _MEMORY[full_key]
    path = _cache_dir() / f"{full_key}.pt"
    fit = None
    if path.exists():
        try:
            blob = torch.load(path, weights_only=True)
            fit = FewBitFit(bits=bits, borders=blob["borders"], levels=blob["levels"], rmse=float(blob["rmse"]))
        except Exception:  # a corrupt cache entry is refitted, not fatal
            fit = None
    if fit is None:
        x, w = _grid(g_fn)
        g = g_fn(x).to(torch.float64)
        raw = fit_piecewise_constant(g, x, w, 2**bits)
        fit = FewBitFit(bits=bits, borders=refine_borders(raw, x, g_fn), levels=raw.levels, rmse=raw.rmse)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as tmp:
                torch.save({"borders": fit.borders, "levels": fit.levels, "rmse": fit.rmse}, tmp)
            os.replace(tmp.name, path)
        except OSError:  # read-only home: keep the in-memory cache only
            pass
    _MEMORY[full_key] = fit
    return fit
