"""The parameters of a rule's bit work, in the two forms the backends read them.

Eager kernels take Python numbers (`GateParams.kernel_args`, `CodeTable.tables`). Compiled
graphs take the same values as tensors (`GateParams.values`, `CodeTable.borders`): Dynamo lifts a
tensor attribute into a graph input, whereas a Python float is baked in as a constant and
guarded, so every pair with other interval ends or levels would recompile the model (issue #14).
Both forms are built once, when the rule is bound.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


# Index of each value in `GateParams.values`.
GRAPH_FIELDS = {name: i for i, name in enumerate(
    ("lo", "hi", "closed_lo", "closed_hi", "level_lo", "level_hi", "lo_f32", "hi_f32", "lo_f64", "hi_f64",
     "zero_hi_f32", "zero_hi_f64"))}


def _closed_ends(lo: float, hi: float, closed_lo: bool, closed_hi: bool, dtype: torch.dtype) -> tuple[float, float]:
    """(lo', hi') with 1[lo <(=) x <(=) hi] == 1[lo' <= x <= hi'] for every x of `dtype` (NaN:
    false in both), the ends rounded to `dtype` first as a compare with a Python number does.
    An open end moves one step inward (x > lo iff x >= nextafter(lo, +inf) in a float type); an
    open end at the far infinity (an end beyond the dtype's range) admits nothing: NaN."""
    def closed(end: float, is_closed: bool, inward: float) -> float:
        e = torch.tensor(end, dtype=dtype)
        if is_closed:
            return float(e)
        if float(e) == inward:  # x > +inf (or x < -inf): never
            return math.nan
        return float(torch.nextafter(e, torch.tensor(inward, dtype=dtype)))

    return closed(lo, closed_lo, math.inf), closed(hi, closed_hi, -math.inf)


def _zero_hi(hi: float) -> float:
    """min(hi', 0) for the closed upper end hi' of `_closed_ends` (NaN, an empty gate, stays
    NaN): x <= 0 lies in the gate iff lo' <= x <= zero_hi, one compare fewer in the kernel that
    writes a relu forward's y with the gate's bit in the sign of its zeros (graph.py)."""
    return hi if math.isnan(hi) else min(hi, 0.0)


class GateParams:
    """A 1-bit gate: g = level_hi where lo <(=) x <(=) hi, level_lo elsewhere.

    Infinite ends count as closed (the kernels' convention), so +-inf inputs fall inside exactly
    as `packing.interval_mask`, which skips infinite ends, says.
    """

    __slots__ = ("kernel_args", "levels", "values", "unit_levels", "positive", "straddles_zero")

    def __init__(self, lo: float, hi: float, closed_lo: bool, closed_hi: bool, levels: tuple[float, float] = (0.0, 1.0)):
        lo, hi = float(lo), float(hi)
        self.kernel_args = (lo, hi, bool(closed_lo or lo == -math.inf), bool(closed_hi or hi == math.inf))
        self.levels = (float(levels[0]), float(levels[1]))
        # Levels (0, 1), the gate of relu/exact, rectangular, clipped_ste...: compiled backwards
        # select the gradient without reading the levels (a bool Dynamo guards on: one graph
        # for these gates and one for all others, never one per value).
        self.unit_levels = self.levels == (0.0, 1.0)
        # The gate 1[x > 0] (relu/exact's): 1[relu(x) > 0] as well, so a compiled graph whose
        # forward is relu keeps plain y for it (native ReLU's graph); other gates behind relu keep
        # y with their bit of x <= 0 in the sign of its zeros (graph.py). Also a structural bool:
        # one graph for these gates, never one per value.
        self.positive = self.kernel_args == (0.0, math.inf, False, True)
        # Graph form: one float64 CPU tensor (indices in GRAPH_FIELDS) holding the interval, the
        # levels and, per compare dtype, the interval as two closed ends: x in it iff
        # lo' <= x <= hi' (two compares in the graph's kernel instead of six ops per end).
        # Closedness is data (1/0, and in lo', hi'), so open and closed ends share one graph.
        # One tensor, not ten: each tensor a graph reads adds guards that run on every call.
        # Then, per compare dtype, min(hi', 0) (`_zero_hi`).
        f32, f64 = (_closed_ends(*self.kernel_args, dtype) for dtype in (torch.float32, torch.float64))
        self.values = torch.tensor([*self.kernel_args, *self.levels, *f32, *f64, _zero_hi(f32[1]), _zero_hi(f64[1])],
                                   dtype=torch.float64)
        # lo' <= 0 <= hi' in both compare dtypes (rectangular's [-a, a], clipped_ste, the jams'):
        # behind relu, x <= 0 is in the gate iff x >= lo', and y > 0 iff y <= hi', one compare
        # fewer each way (graph.py). Structural as well: one graph for these gates.
        self.straddles_zero = all(lo_ <= 0.0 <= hi_ for lo_, hi_ in (f32, f64))

    @classmethod
    def of(cls, interval, levels: tuple[float, float] = (0.0, 1.0)) -> "GateParams":
        """From an `Interval` (saved_state.py) and the two levels."""
        return cls(interval.lo, interval.hi, interval.closed_lo, interval.closed_hi, levels)


class CodeTable:
    """A b-bit code rule's sorted borders (2^b - 1 at most) and levels (2^b), float64 masters."""

    __slots__ = ("borders", "levels", "bits", "_cache")

    def __init__(self, borders: Tensor, levels: Tensor, bits: int):
        self.borders = borders.detach().to(torch.float64).contiguous()
        self.levels = levels.detach().to(torch.float64).contiguous()
        self.bits = int(bits)
        self._cache: dict[tuple, tuple[Tensor, Tensor]] = {}

    def tables(self, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """(borders, levels) on `device` in `dtype`, converted once per (device, dtype) in eager
        mode; inside a compiled graph converted in the graph (a dict filled while tracing would
        be a side effect Dynamo has to replay)."""
        if torch.compiler.is_compiling():
            return self.borders.to(device=device, dtype=dtype), self.levels.to(device=device, dtype=dtype)
        key = (device, dtype)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = (self.borders.to(device=device, dtype=dtype), self.levels.to(device=device, dtype=dtype))
        return cached


class FixedKeys:
    """A key source that always gives the same two 32-bit keys (tests, the custom-op boundary)."""

    __slots__ = ("keys",)

    def __init__(self, key_a: int, key_b: int):
        self.keys = (int(key_a) & 0xFFFFFFFF, int(key_b) & 0xFFFFFFFF)

    def next_keys(self) -> tuple[int, int]:
        """The two keys."""
        return self.keys
