"""Optimizer registry: build a ``torch.optim.Optimizer`` from a name and a flat dict of settings.

The sweep layer passes Hydra configs straight through (``build_optimizer(parameters=...,
**cfg.optimizer)``), so every setting is validated here with an error that names the bad value
and what is allowed. A typo in a sweep config should fail at start-up, not silently train with a
default.

Registered optimizers (all thin wrappers around ``torch.optim``; no custom update rules, so results
are bit-identical to using torch directly):

* ``sgd``     -- lr, momentum, nesterov, weight_decay, dampening
* ``adam``    -- lr, betas, eps, weight_decay
* ``adamw``   -- lr, betas, eps, weight_decay (decoupled decay)
* ``rmsprop`` -- lr, alpha, momentum, eps, weight_decay

The small validation helpers at the bottom (``_lookup``, ``_reject_unknown``, ``_reject_missing``,
``_real``, ``_integer``) are shared with :mod:`harness.train.schedules`.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import torch
from torch import nn

from harness.suggest import describe_unknown_keys, unknown_name_message

__all__ = ["OPTIMIZERS", "register_optimizer", "build_optimizer"]

#: name -> factory ``factory(parameters, *, <settings>) -> torch.optim.Optimizer``.
#: The factory's keyword-only parameters *are* the accepted settings; their defaults are the
#: defaults used when a setting is omitted (and are kept equal to ``conf/optimizer/<name>.yaml``).
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {}

_F = TypeVar("_F", bound=Callable[..., Any])


def register_optimizer(name: str) -> Callable[[_F], _F]:
    """Decorator: register ``factory(parameters, *, **settings) -> Optimizer`` under ``name``.

    The factory's keyword-only parameters define which settings ``build_optimizer`` accepts, so
    adding an optimizer needs no change anywhere else. Names are case-insensitive; registering a
    name twice is an error (it would silently shadow the first definition).
    """
    return _registrar(OPTIMIZERS, "optimizer", name)


def _registrar(registry: dict[str, Any], kind: str, name: str) -> Callable[[_F], _F]:
    """The decorator behind register_optimizer / register_scheduler: case-insensitive name,
    registering a name twice is an error."""
    key = name.strip().lower()

    def decorator(factory: _F) -> _F:
        if key in registry:
            raise ValueError(f"{kind} {key!r} is already registered")
        registry[key] = factory
        return factory

    return decorator


def build_optimizer(name: str, parameters: Any, **params: Any) -> torch.optim.Optimizer:
    """Build the optimizer registered as ``name`` over ``parameters`` with settings ``params``.

    Args:
        name: registry key (case-insensitive), one of ``sorted(OPTIMIZERS)``.
        parameters: what ``torch.optim`` accepts (an iterable of tensors or of param-group dicts);
            an ``nn.Module`` is also accepted and means ``module.parameters()``.
        **params: optimizer settings; omitted ones take the factory defaults. Sequences such as
            ``betas`` may be lists (Hydra/OmegaConf produces lists) or tuples.

    Raises:
        ValueError: unknown ``name`` (with the closest valid names), unknown setting (with the
            valid settings), or a setting outside its allowed range (naming value and range).
        TypeError: a setting of the wrong type (e.g. a string where a number is expected).
    """
    key, factory = _lookup(OPTIMIZERS, name, kind="optimizer")
    _reject_unknown(f"optimizer {key!r}", params, _keyword_params(factory))
    _reject_missing(f"optimizer {key!r}", params, factory)
    if isinstance(parameters, nn.Module):
        parameters = parameters.parameters()
    return factory(parameters, **params)


# --------------------------------------------------------------------------------------------
# Registered optimizers. Defaults mirror conf/optimizer/*.yaml (a test keeps them in sync).
# --------------------------------------------------------------------------------------------


@register_optimizer("sgd")
def _sgd(
    parameters: Iterable[Any],
    *,
    lr: float = 0.05,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    dampening: float = 0.0,
) -> torch.optim.SGD:
    """Plain / momentum / Nesterov SGD (``torch.optim.SGD``); lr 0.05 is the Troiano digits-MLP setting."""
    ctx = "optimizer 'sgd'"
    lr = _positive_lr(ctx, lr)
    momentum = _real(ctx, "momentum", momentum, low=0.0, high=1.0, high_open=True)
    weight_decay = _real(ctx, "weight_decay", weight_decay, low=0.0)
    dampening = _real(ctx, "dampening", dampening, low=0.0, high=1.0)
    nesterov = _boolean(ctx, "nesterov", nesterov)
    if nesterov and momentum == 0.0:
        # Nesterov is a look-ahead on the momentum buffer; without momentum it is undefined and
        # torch would raise a less specific error.
        raise ValueError(
            f"{ctx}: nesterov=True requires momentum in (0, 1), got momentum={momentum!r}; "
            "set momentum > 0 or nesterov=False"
        )
    if nesterov and dampening != 0.0:
        raise ValueError(
            f"{ctx}: nesterov=True requires dampening=0, got dampening={dampening!r}"
        )
    return torch.optim.SGD(
        parameters,
        lr=lr,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
        dampening=dampening,
    )


@register_optimizer("adam")
def _adam(
    parameters: Iterable[Any],
    *,
    lr: float = 1e-2,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> torch.optim.Adam:
    """Adam (``torch.optim.Adam``, L2 decay added to the gradient); lr 1e-2 is the MNIST-1D setting."""
    ctx = "optimizer 'adam'"
    return torch.optim.Adam(
        parameters,
        lr=_positive_lr(ctx, lr),
        betas=_betas(ctx, betas),
        eps=_real(ctx, "eps", eps, low=0.0, low_open=True),
        weight_decay=_real(ctx, "weight_decay", weight_decay, low=0.0),
    )


@register_optimizer("adamw")
def _adamw(
    parameters: Iterable[Any],
    *,
    lr: float = 1e-2,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
) -> torch.optim.AdamW:
    """AdamW (``torch.optim.AdamW``, decoupled weight decay; default decay is torch's 1e-2)."""
    ctx = "optimizer 'adamw'"
    return torch.optim.AdamW(
        parameters,
        lr=_positive_lr(ctx, lr),
        betas=_betas(ctx, betas),
        eps=_real(ctx, "eps", eps, low=0.0, low_open=True),
        weight_decay=_real(ctx, "weight_decay", weight_decay, low=0.0),
    )


@register_optimizer("rmsprop")
def _rmsprop(
    parameters: Iterable[Any],
    *,
    lr: float = 1e-3,
    alpha: float = 0.99,
    momentum: float = 0.0,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> torch.optim.RMSprop:
    """RMSprop (``torch.optim.RMSprop``); alpha is the smoothing constant of the squared-gradient EMA."""
    ctx = "optimizer 'rmsprop'"
    return torch.optim.RMSprop(
        parameters,
        lr=_positive_lr(ctx, lr),
        # alpha = 1 would freeze the squared-gradient average at its initial 0 and divide by eps.
        alpha=_real(ctx, "alpha", alpha, low=0.0, high=1.0, high_open=True),
        momentum=_real(ctx, "momentum", momentum, low=0.0, high=1.0, high_open=True),
        eps=_real(ctx, "eps", eps, low=0.0, low_open=True),
        weight_decay=_real(ctx, "weight_decay", weight_decay, low=0.0),
    )


# --------------------------------------------------------------------------------------------
# Validation helpers (also imported by harness.train.schedules).
# --------------------------------------------------------------------------------------------


def _positive_lr(ctx: str, lr: Any) -> float:
    """Learning rates must be finite and > 0 (0 would silently train nothing)."""
    return _real(ctx, "lr", lr, low=0.0, low_open=True)


def _betas(ctx: str, betas: Any) -> tuple[float, float]:
    """Accept a 2-sequence (list from Hydra, tuple from Python) of numbers in [0, 1)."""
    if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2:
        raise TypeError(
            f"{ctx}: betas must be a list or tuple of two numbers in [0, 1), got {betas!r}"
        )
    return (
        _real(ctx, "betas[0]", betas[0], low=0.0, high=1.0, high_open=True),
        _real(ctx, "betas[1]", betas[1], low=0.0, high=1.0, high_open=True),
    )


def _boolean(ctx: str, key: str, value: Any) -> bool:
    """Only real booleans: ``nesterov: "false"`` from a hand-edited config would be truthy."""
    if not isinstance(value, bool):
        raise TypeError(f"{ctx}: {key} must be true or false, got {value!r}")
    return value


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """Human-readable interval such as ``[0, 1)`` or ``(0, inf)``."""
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    left = "(" if (low is None or low_open) else "["
    right = ")" if (high is None or high_open) else "]"
    return f"{left}{lo}, {hi}{right}"


def _real(
    ctx: str,
    key: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Check that ``value`` is a finite real number inside the interval; return it as float.

    Errors name the context (which optimizer/schedule), the setting, the bad value and the
    allowed interval, e.g. ``optimizer 'sgd': momentum must be in [0, 1), got 1.0``.
    """
    allowed = _interval(low, high, low_open, high_open)
    # bool is a subclass of int; `lr: true` is a config mistake, not the number 1.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{ctx}: {key} must be a number in {allowed}, got {value!r}")
    number = float(value)
    bad = not math.isfinite(number)
    if low is not None:
        bad = bad or number < low or (low_open and number == low)
    if high is not None:
        bad = bad or number > high or (high_open and number == high)
    if bad:
        raise ValueError(f"{ctx}: {key} must be in {allowed}, got {value!r}")
    return number


def _integer(
    ctx: str, key: str, value: Any, *, low: int | None = None, high: int | None = None
) -> int:
    """Check that ``value`` is an int in ``[low, high)`` (``high`` exclusive); return it.

    Step counts must be exact integers: a float such as 2.5 steps is almost certainly a
    fraction put into the wrong field, so it is rejected rather than rounded.
    """
    allowed = f"[{'-inf' if low is None else low}, {'inf' if high is None else high})"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{ctx}: {key} must be an integer in {allowed}, got {value!r}")
    number = int(value)
    if (low is not None and number < low) or (high is not None and number >= high):
        raise ValueError(f"{ctx}: {key} must be an integer in {allowed}, got {value!r}")
    return number


def _lookup(registry: Mapping[str, _F], name: Any, *, kind: str) -> tuple[str, _F]:
    """Return ``(normalised_name, entry)``; unknown names raise with close matches and the full list."""
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be a string, got {name!r}")
    key = name.strip().lower()
    if key in registry:
        return key, registry[key]
    raise ValueError(unknown_name_message(kind, name, registry, match=key))


def _keyword_params(fn: Callable[..., Any], exclude: Iterable[str] = ()) -> list[str]:
    """Names of ``fn``'s keyword-passable parameters (its accepted settings), minus ``exclude``."""
    skip = set(exclude)
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [
        p.name
        for p in inspect.signature(fn).parameters.values()
        # Leading underscore = internal plumbing, never a user setting.
        if p.kind in kinds and p.name not in skip and p.name != "parameters" and not p.name.startswith("_")
    ]


def _reject_missing(ctx: str, given: Mapping[str, Any], fn: Callable[..., Any], supplied: Iterable[str] = ()) -> None:
    """Raise ``ValueError`` naming required settings of ``fn`` (no default) absent from ``given``."""
    skip = set(supplied) | {"parameters"}
    missing = [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
        and p.default is inspect.Parameter.empty
        and p.name not in skip
        and p.name not in given
    ]
    if missing:
        raise ValueError(f"{ctx}: missing required parameter(s) {', '.join(missing)}")


def _reject_unknown(ctx: str, given: Mapping[str, Any], valid: Iterable[str]) -> None:
    """Raise ``ValueError`` naming unknown keys, their closest valid spelling, and all valid keys."""
    valid = list(valid)
    unknown = [k for k in given if k not in valid]
    if not unknown:
        return
    raise ValueError(
        f"{ctx}: unknown parameter(s) {describe_unknown_keys(unknown, valid)}; "
        f"valid parameters: {', '.join(valid) if valid else '(none)'}"
    )
