"""Name -> entry registries with helpful errors, and declarative parameter specs.

One `Registry` per kind of plug-in (forwards, backward rules, ...). Lookups of an unknown
name raise `UnknownNameError` naming the closest valid names and listing them all, so a typo
in a sweep fails at config time with a fix in the message.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

from harness.errors import ParameterError, UnknownNameError
from harness.suggest import unknown_name_message

T = TypeVar("T")




class Registry(Generic[T]):
    """A mapping from names to entries of one kind (e.g. backward rules)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register `entry` under `name`; registering a name twice is an error."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        """Return the entry for `name` or raise UnknownNameError with suggestions."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(unknown_name_message(self.kind, name, list(self._entries))) from None

    def names(self) -> list[str]:
        """All registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class Param:
    """One parameter of a forward or rule: default value and allowed range.

    `lo`/`hi` bound numbers (inclusive unless `open_lo`/`open_hi`); `choices` restricts strings.
    """

    default: Any
    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False
    open_hi: bool = False
    integer: bool = False
    choices: tuple | None = None

    def allowed(self) -> str:
        """Human-readable description of the allowed values."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kind = "an integer" if self.integer else "a number"
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.open_lo else '>='} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"{'<' if self.open_hi else '<='} {self.hi:g}")
        return kind + (" " + " and ".join(parts) if parts else "")

    def validate(self, owner: str, name: str, value: Any) -> Any:
        """Return `value` coerced to the parameter's type, or raise ParameterError."""
        if self.choices is not None:
            if value not in self.choices:
                raise ParameterError(f"{owner}: {name}={value!r} is not allowed; {name} must be {self.allowed()}.")
            return value
        if isinstance(self.default, bool) or isinstance(self.default, str):
            if type(value) is not type(self.default):
                raise ParameterError(f"{owner}: {name}={value!r} must be a {type(self.default).__name__}.")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"{owner}: {name}={value!r} must be {self.allowed()}.")
        if not math.isfinite(value):
            raise ParameterError(f"{owner}: {name}={value!r} is out of range; {name} must be {self.allowed()}.")
        if self.integer:
            if float(value) != int(value):
                raise ParameterError(f"{owner}: {name}={value!r} must be {self.allowed()}.")
            value = int(value)
        else:
            value = float(value)
        bad = not math.isfinite(value)
        if self.lo is not None:
            bad |= value <= self.lo if self.open_lo else value < self.lo
        if self.hi is not None:
            bad |= value >= self.hi if self.open_hi else value > self.hi
        if bad:
            raise ParameterError(f"{owner}: {name}={value!r} is out of range; {name} must be {self.allowed()}.")
        return value


def positive(default: float) -> Param:
    """A number > 0 (widths, sharpness factors)."""
    return Param(default, lo=0.0, open_lo=True)


def nonnegative(default: float) -> Param:
    """A number >= 0."""
    return Param(default, lo=0.0)


def free(default: Any) -> Param:
    """A finite number (or bool/str) with no range restriction."""
    return Param(default)


def choice(default: str, *options: str) -> Param:
    """A string from a fixed set."""
    return Param(default, choices=(default, *[o for o in options if o != default]))


def integer(default: int, lo: int, hi: int) -> Param:
    """An integer in [lo, hi]."""
    return Param(default, lo=lo, hi=hi, integer=True)


def as_params(spec: dict[str, Any]) -> dict[str, Param]:
    """Normalise a decorator's keyword defaults: a plain value becomes `free(value)`."""
    return {k: v if isinstance(v, Param) else free(v) for k, v in spec.items()}


def bind_params(
    owner: str,
    spec: dict[str, Param],
    given: dict[str, Any],
    check: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """Validate `given` against `spec`, fill defaults, run the cross-parameter `check`.

    `check(**params)` returns True/None when fine, or a message string (or False) when not.
    """
    unknown = sorted(set(given) - set(spec))
    if unknown:
        valid = ", ".join(f"{k} (default {p.default!r})" for k, p in spec.items()) or "none"
        raise ParameterError(f"{owner} has no parameter {', '.join(map(repr, unknown))}. Valid parameters: {valid}.")
    bound = {k: p.validate(owner, k, given.get(k, p.default)) for k, p in spec.items()}
    if check is not None:
        verdict = check(**bound)
        if verdict is False or isinstance(verdict, str):
            detail = verdict if isinstance(verdict, str) else "parameters are inconsistent"
            raise ParameterError(f"{owner}: {detail} (got {bound}).")
    return bound
