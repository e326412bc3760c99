"""Checks for optimizer and schedule settings, with one wording for both.

Sweep configs reach `build_optimizer` and `build_scheduler` as flat dicts straight from Hydra,
so every setting is checked here with an error that names the context (which optimizer or
schedule), the setting, the bad value and what is allowed, e.g.
``optimizer 'sgd': momentum must be in [0, 1), got 1.0``. Errors are the harness family
(`harness.errors`): ParameterError for a bad value, ParameterTypeError (also a TypeError) for a
value of the wrong type or a setting that does not exist.
"""
from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from harness.errors import ParameterError, ParameterTypeError
from harness.registry import Param
from harness.suggest import describe_unknown_keys


def interval(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    """Human-readable interval such as ``[0, 1)`` or ``(0, inf)``."""
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    left = "(" if (low is None or low_open) else "["
    right = ")" if (high is None or high_open) else "]"
    return f"{left}{lo}, {hi}{right}"


def real(ctx: str, key: str, value: Any, *, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float if it is a finite real number inside the interval, else raise."""
    allowed = interval(low, high, low_open, high_open)
    # bool is a subclass of int; `lr: true` is a config mistake, not the number 1.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterTypeError(f"{ctx}: {key} must be a number in {allowed}, got {value!r}")
    number = float(value)
    bad = not math.isfinite(number)
    if low is not None:
        bad = bad or number < low or (low_open and number == low)
    if high is not None:
        bad = bad or number > high or (high_open and number == high)
    if bad:
        raise ParameterError(f"{ctx}: {key} must be in {allowed}, got {value!r}")
    return number


def integer(ctx: str, key: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` if it is an int in ``[low, high)`` (``high`` exclusive), else raise.

    Step counts must be exact integers: a float such as 2.5 steps is almost certainly a
    fraction put into the wrong field, so it is rejected rather than rounded.
    """
    allowed = f"[{'-inf' if low is None else low}, {'inf' if high is None else high})"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterTypeError(f"{ctx}: {key} must be an integer in {allowed}, got {value!r}")
    number = int(value)
    if (low is not None and number < low) or (high is not None and number >= high):
        raise ParameterError(f"{ctx}: {key} must be an integer in {allowed}, got {value!r}")
    return number


def boolean(ctx: str, key: str, value: Any) -> bool:
    """Only real booleans: ``nesterov: "false"`` from a hand-edited config would be truthy."""
    if not isinstance(value, bool):
        raise ParameterTypeError(f"{ctx}: {key} must be true or false, got {value!r}")
    return value


def check_setting(ctx: str, key: str, value: Any, param: Param) -> Any:
    """Check ``value`` against its declaration: a bool, a number in [lo, hi] (open ends as
    declared), or, for a tuple default such as Adam's betas, a list or tuple of that many numbers
    each in the range (Hydra passes lists)."""
    bounds = dict(low=param.lo, high=param.hi, low_open=param.open_lo, high_open=param.open_hi)
    if isinstance(param.default, bool):
        return boolean(ctx, key, value)
    if isinstance(param.default, tuple):
        n = len(param.default)
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != n:
            raise ParameterTypeError(f"{ctx}: {key} must be a list or tuple of {_count(n)} numbers in "
                                     f"{interval(**bounds)}, got {value!r}")
        return tuple(real(ctx, f"{key}[{i}]", v, **bounds) for i, v in enumerate(value))
    return real(ctx, key, value, **bounds)


def _count(n: int) -> str:
    return {1: "one", 2: "two", 3: "three"}.get(n, str(n))


def reject_unknown(ctx: str, given: Mapping[str, Any], valid: Iterable[str]) -> None:
    """Raise naming unknown keys, their closest valid spelling, and all valid keys."""
    valid = list(valid)
    unknown = [k for k in given if k not in valid]
    if unknown:
        raise ParameterTypeError(f"{ctx}: unknown parameter(s) {describe_unknown_keys(unknown, valid)}; "
                                 f"valid parameters: {', '.join(valid) if valid else '(none)'}")


def keyword_params(fn: Callable[..., Any], exclude: Iterable[str] = ()) -> list[str]:
    """Names of ``fn``'s keyword-passable parameters (its accepted settings), minus ``exclude``;
    a leading underscore marks internal plumbing, never a user setting."""
    skip = set(exclude)
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in inspect.signature(fn).parameters.values()
            if p.kind in kinds and p.name not in skip and not p.name.startswith("_")]


def reject_missing(ctx: str, given: Mapping[str, Any], fn: Callable[..., Any], supplied: Iterable[str] = ()) -> None:
    """Raise naming the required settings of ``fn`` (keyword-only, no default) absent from ``given``."""
    skip = set(supplied)
    missing = [p.name for p in inspect.signature(fn).parameters.values()
               if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
               and p.name not in skip and p.name not in given]
    if missing:
        raise ParameterError(f"{ctx}: missing required parameter(s) {', '.join(missing)}")


def takes_var_keyword(fn: Callable[..., Any]) -> bool:
    """True if ``fn`` accepts ``**kwargs`` (and so validates extra settings itself)."""
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
