"""Small argument checks that fail with a message saying what is wrong and what is allowed.

Configs come from Hydra YAML and command-line overrides, so a bad value should stop the run
before any work with a message that can be acted on, not deep inside numpy.
"""
from __future__ import annotations

import numbers

from harness.errors import ParameterError, ParameterTypeError


def check_positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Return `value` as an int, or raise ParameterError unless it is an integer >= `minimum`."""
    # bool is an int subclass; `num_train: true` in YAML is a typo, not 1.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterTypeError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value}.")
    return int(value)


def check_fraction(name: str, value: object, *, allow_zero: bool) -> float:
    """Return `value` as a float in [0, 1) (or (0, 1) when `allow_zero` is False), else raise ParameterError."""
    interval = "[0, 1)" if allow_zero else "(0, 1)"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterTypeError(f"{name} must be a number in {interval}, got {value!r} ({type(value).__name__}).")
    value = float(value)
    low_ok = value >= 0.0 if allow_zero else value > 0.0
    if not (low_ok and value < 1.0):
        raise ParameterError(f"{name} must be in {interval}, got {value}.")
    return value


def check_positive_float(name: str, value: object, *, allow_zero: bool = False) -> float:
    """Return `value` as a float > 0 (>= 0 when `allow_zero`), else raise ParameterError."""
    bound = ">= 0" if allow_zero else "> 0"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterTypeError(f"{name} must be a number {bound}, got {value!r} ({type(value).__name__}).")
    value = float(value)
    if value < 0.0 or (value == 0.0 and not allow_zero) or value != value:
        raise ParameterError(f"{name} must be a number {bound}, got {value}.")
    return value
