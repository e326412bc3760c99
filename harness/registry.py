"""One registry type for every kind of plug-in, and declarative parameter specs.

A `Registry` maps names to entries of one kind: forwards and backward rules
(harness.activations), datasets (harness.data), models (harness.models), optimizers and
schedules (harness.train). Looking up an unknown name raises `UnknownNameError` naming the
closest valid names and listing them all, so a typo in a sweep fails at config time with the fix
in the message. `Param` declares one parameter (default, range or choices); `bind_params`
checks a config against the declared parameters and raises `ParameterError`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

from harness.errors import ParameterError, ParameterTypeError, UnknownNameError
from harness.suggest import unknown_name_message

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to entries of one kind (e.g. backward rules).

    `case_insensitive`: names are stored and looked up in lower case, without surrounding
    spaces (optimizer and schedule names, where `SGD` and `sgd` mean the same thing).
    """

    def __init__(self, kind: str, *, case_insensitive: bool = False):
        self.kind = kind
        self.case_insensitive = case_insensitive
        self._entries: dict[str, T] = {}

    def key(self, name: object) -> object:
        """The spelling `name` is stored under (lower case for case-insensitive registries)."""
        return name.strip().lower() if self.case_insensitive and isinstance(name, str) else name

    def add(self, name: str, entry: T) -> T:
        """Register `entry` under `name`; registering a name twice is an error."""
        key = self.key(name)
        if key in self._entries:
            raise ValueError(f"{self.kind} {key!r} is already registered")
        self._entries[key] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`: `@REGISTRY.register("name")` above the entry."""
        return lambda entry: self.add(name, entry)

    def get(self, name: object) -> T:
        """Return the entry for `name` or raise UnknownNameError with suggestions."""
        try:
            return self._entries[self.key(name)]
        except (KeyError, TypeError):
            match = self.key(name) if isinstance(name, str) else None
            raise UnknownNameError(unknown_name_message(self.kind, name, list(self._entries), match=match)) from None

    __getitem__ = get

    def pop(self, name: str) -> T:
        """Unregister `name` and return its entry (tests and plug-ins that clean up after themselves)."""
        return self._entries.pop(self.key(name))

    def names(self) -> list[str]:
        """All registered names, in registration order."""
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) pairs, in registration order."""
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        try:
            return self.key(name) in self._entries
        except TypeError:  # unhashable: never a registered name
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class Param:
    """One declared parameter of a plug-in: default value and allowed range.

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
                raise ParameterTypeError(f"{owner}: {name}={value!r} must be a {type(self.default).__name__}.")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterTypeError(f"{owner}: {name}={value!r} must be {self.allowed()}.")
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
        raise ParameterTypeError(f"{owner} has no parameter {', '.join(map(repr, unknown))}. Valid parameters: {valid}.")
    bound = {k: p.validate(owner, k, given.get(k, p.default)) for k, p in spec.items()}
    if check is not None:
        verdict = check(**bound)
        if verdict is False or isinstance(verdict, str):
            detail = verdict if isinstance(verdict, str) else "parameters are inconsistent"
            raise ParameterError(f"{owner}: {detail} (got {bound}).")
    return bound
