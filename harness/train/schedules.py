r"""Learning-rate schedules by name, on ``torch.optim.lr_scheduler``, stepped once per optimizer step.

Usage in a training loop (``step()`` goes AFTER ``optimizer.step()`` and BEFORE
``optimizer.zero_grad()`` -- ``snr_adaptive`` reads ``p.grad``)::

    sched = build_scheduler(optimizer=opt, total_steps=T, **cfg.scheduler)
    for t in range(T):              # the lr used by step t is the value after t calls to step()
        loss.backward(); opt.step()
        sched.step()
        opt.zero_grad()

Every schedule is an :class:`~harness.train.lr_schedule.LRSchedule` over a torch scheduler in
closed form: ``lr(t)`` is a pure function of the number ``t`` of completed ``step()`` calls and of
each param group's base lr (``group["initial_lr"]``, torch's convention: recorded from
``group["lr"]`` by the first scheduler). Stepping past ``total_steps`` holds the final value (no
cosine restarts). The registered schedules (``SCHEDULERS``):

* ``constant``                            lr(t) = base                             (LambdaLR)
* ``step`` (step_size, gamma)              lr(t) = base * gamma ** (t // step_size) (LambdaLR)
* ``cosine`` (min_lr | eta_min)            lr(t) = min + (base - min) * (1 + cos(pi * min(t,T)/T)) / 2 (LambdaLR)
* ``warmup`` (warmup_steps | warmup_fraction, after, ...)  lr(t) = base * (t+1)/(W+1) for t < W, then
  ``after`` over the remaining T - W steps                 (SequentialLR)
* ``snr_adaptive`` (base, beta, min_scale, max_scale, rho_ref, ref_steps, ...): ours, see
  :mod:`harness.train.snr_adaptive`.

The first four are *shapes* and compose: ``warmup`` hands over to any other shape and
``snr_adaptive`` multiplies any shape. torch's own StepLR, CosineAnnealingLR and LinearLR are not
used: they update the lr recursively from its current value, so a scale on top (snr_adaptive)
would compound, and CosineAnnealingLR climbs back up after ``T_max``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, SequentialLR

from harness.errors import ParameterError, ParameterTypeError, UnknownNameError
from harness.registry import Registry
from harness.suggest import unknown_name_message

from .lr_schedule import ConstantFactor, LRSchedule
from .settings import integer, keyword_params, real, reject_missing, reject_unknown, takes_var_keyword
from .snr_adaptive import SNRAdaptiveSchedule

__all__ = ["SCHEDULERS", "LRSchedule", "SNRAdaptiveSchedule", "build_scheduler", "register_scheduler", "register_shape"]


class ScheduleEntry(NamedTuple):
    """A registered schedule: ``build`` and whether it is a composable shape.

    A shape's ``build(optimizer, *, total_steps, base_lrs, **settings)`` returns a torch scheduler
    in closed form; a full schedule's ``build(optimizer, *, total_steps, **settings)`` returns an
    :class:`LRSchedule`. Keyword-only parameters are the accepted settings (their defaults are used
    when a setting is omitted); a builder taking ``**kwargs`` validates those itself.
    """

    build: Callable[..., Any]
    shape: bool


#: name (case-insensitive) -> ScheduleEntry.
SCHEDULERS: Registry[ScheduleEntry] = Registry("scheduler", case_insensitive=True)

# Keywords that build_scheduler supplies itself; they are never user settings.
_FIXED = ("optimizer", "total_steps", "base_lrs")


def register_shape(name: str) -> Callable[[Callable[..., LRScheduler]], Callable[..., LRScheduler]]:
    """Decorator: register a shape ``build(optimizer, *, total_steps, base_lrs, **settings) -> LRScheduler``.

    The shape becomes available three ways: as a schedule of its own (``build_scheduler(name)``),
    as the ``after`` schedule of ``warmup`` and as the ``base`` of ``snr_adaptive``.
    """
    return lambda build: SCHEDULERS.add(name, ScheduleEntry(build, shape=True)).build


def register_scheduler(name: str) -> Callable[[Callable[..., LRSchedule]], Callable[..., LRSchedule]]:
    """Decorator: register a full schedule ``build(optimizer, *, total_steps, **settings) -> LRSchedule``
    (for schedules with state beyond the step count, such as ``snr_adaptive``)."""
    return lambda build: SCHEDULERS.add(name, ScheduleEntry(build, shape=False)).build


def build_scheduler(name: str, optimizer: torch.optim.Optimizer, *, total_steps: int, **params: Any) -> LRSchedule:
    """Build the schedule registered as ``name`` for ``optimizer`` over ``total_steps`` steps.

    Args:
        name: registry key (case-insensitive), one of ``SCHEDULERS.names()``.
        optimizer: the optimizer whose ``param_groups[i]["lr"]`` (or ``"initial_lr"`` if an earlier
            scheduler recorded it) are the base learning rates; the schedule overwrites ``"lr"``
            from now on (the step-0 value is applied immediately).
        total_steps: number of optimizer steps in the run (> 0); cosine and warm-up fractions are
            relative to it.
        **params: schedule settings (see the module docstring); ``None`` is only accepted where a
            setting documents it (e.g. ``warmup_steps: null`` when ``warmup_fraction`` is used).

    Raises:
        UnknownNameError, or ParameterError (ParameterTypeError for a wrong type or an unknown
        setting) with the bad value and the allowed range or names.
    """
    entry = SCHEDULERS.get(name)
    ctx = f"scheduler {SCHEDULERS.key(name)!r}"
    total_steps = integer(ctx, "total_steps", total_steps, low=1)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ParameterTypeError(f"{ctx}: optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not entry.shape:
        _check_settings(ctx, entry.build, params)
        return entry.build(optimizer, total_steps=total_steps, **params)
    scheduler = _build_shape(name, optimizer, total_steps=total_steps, params=params)
    return LRSchedule(scheduler, total_steps=total_steps)


# --------------------------------------------------------------------------------------------
# Shapes: per-group factors of the base lr, pure functions of the step (frozen dataclasses, so
# repr() shows their settings and LambdaLR's state_dict carries them).
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _StepFactor:
    step_size: int
    gamma: float

    def __call__(self, step: int) -> float:
        return self.gamma ** (step // self.step_size)


@dataclasses.dataclass(frozen=True)
class _CosineFactor:
    total_steps: int
    min_lr: float
    base_lr: float

    def __call__(self, step: int) -> float:
        # Clamp so stepping past the end holds min_lr instead of climbing back up.
        progress = min(step, self.total_steps) / self.total_steps
        lr = self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return lr / self.base_lr


@dataclasses.dataclass(frozen=True)
class _RampFactor:
    warmup_steps: int

    def __call__(self, step: int) -> float:
        # (t+1)/(W+1): never 0 (a zero-lr step is wasted), and the ramp continues linearly into
        # the base lr exactly at t = W, where `after` starts at its own step 0.
        return (step + 1) / (self.warmup_steps + 1)


class WarmupThen(SequentialLR):
    """Linear warm-up for ``warmup_steps`` steps, then ``after`` (torch's SequentialLR)."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int, after: LRScheduler) -> None:
        self.warmup_steps = warmup_steps
        ramp = LambdaLR(optimizer, _RampFactor(warmup_steps))
        super().__init__(optimizer, [ramp, after], milestones=[warmup_steps])


@register_shape("constant")
def _constant(optimizer: torch.optim.Optimizer, *, total_steps: int, base_lrs: Sequence[float]) -> LRScheduler:
    """Constant learning rate: lr(t) = base_lr."""
    return LambdaLR(optimizer, ConstantFactor())


@register_shape("step")
def _step(optimizer: torch.optim.Optimizer, *, total_steps: int, base_lrs: Sequence[float], step_size: int,
          gamma: float = 0.1) -> LRScheduler:
    """Step decay: lr(t) = base_lr * gamma ** (t // step_size); step_size counts optimizer steps."""
    ctx = "scheduler 'step'"
    step_size = integer(ctx, "step_size", step_size, low=1)
    gamma = real(ctx, "gamma", gamma, low=0.0, high=1.0, low_open=True)
    if step_size >= total_steps:
        # Not an error (sweeps vary total_steps), but the schedule is then constant.
        warnings.warn(f"{ctx}: step_size={step_size} >= total_steps={total_steps}, so the lr never decays",
                      stacklevel=3)
    return LambdaLR(optimizer, _StepFactor(step_size, gamma))


@register_shape("cosine")
def _cosine(optimizer: torch.optim.Optimizer, *, total_steps: int, base_lrs: Sequence[float],
            min_lr: float | None = None, eta_min: float | None = None) -> LRScheduler:
    """Cosine annealing from base_lr to min_lr (alias eta_min, torch's name; default 0) over total_steps."""
    ctx = "scheduler 'cosine'"
    if min_lr is not None and eta_min is not None:
        raise ParameterError(f"{ctx}: give min_lr or its alias eta_min, not both "
                             f"(got min_lr={min_lr!r}, eta_min={eta_min!r})")
    key, value = ("eta_min", eta_min) if eta_min is not None else ("min_lr", min_lr)
    floor = real(ctx, key, 0.0 if value is None else value, low=0.0)
    for i, base in enumerate(base_lrs):
        if floor > base:
            raise ParameterError(f"{ctx}: {key}={value!r} must be in [0, base lr] but param group {i} has base lr {base!r}")
    return LambdaLR(optimizer, [_CosineFactor(total_steps, floor, base) for base in base_lrs])


@register_shape("warmup")
def _warmup(optimizer: torch.optim.Optimizer, *, total_steps: int, base_lrs: Sequence[float],
            warmup_steps: int | None = None, warmup_fraction: float | None = None, after: str = "cosine",
            _outer_params: Sequence[str] = (), **after_params: Any) -> LRScheduler:
    """Linear warm-up lr(t) = base_lr*(t+1)/(W+1) for t < W, then `after` over the remaining total_steps - W.

    Exactly one of ``warmup_steps`` (int in [0, total_steps)) or ``warmup_fraction`` (in (0, 1),
    W = round(fraction * total_steps), at least 1) must be set. ``after`` is any registered shape
    except ``warmup`` (default ``cosine``); remaining settings (e.g. ``min_lr``) are passed to it.
    """
    ctx = "scheduler 'warmup'"
    if (warmup_steps is None) == (warmup_fraction is None):
        raise ParameterError(f"{ctx}: set exactly one of warmup_steps or warmup_fraction "
                           f"(got warmup_steps={warmup_steps!r}, warmup_fraction={warmup_fraction!r})")
    if warmup_fraction is not None:
        fraction = real(ctx, "warmup_fraction", warmup_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
        warmup_steps = max(1, math.floor(fraction * total_steps + 0.5))
        if warmup_steps >= total_steps:
            raise ParameterError(f"{ctx}: warmup_fraction={warmup_fraction!r} of total_steps={total_steps} gives "
                               f"{warmup_steps} warm-up steps; it must leave at least one step, i.e. be < total_steps")
    else:
        warmup_steps = integer(ctx, "warmup_steps", warmup_steps, low=0, high=total_steps)
    after_scheduler = _build_shape(after, optimizer, total_steps=total_steps - warmup_steps, params=after_params,
                                   ctx=ctx, role="after", exclude=("warmup",),
                                   own_params=(*_outer_params, "warmup_steps", "warmup_fraction", "after"))
    return WarmupThen(optimizer, warmup_steps, after_scheduler)


@register_scheduler("snr_adaptive")
def _snr_adaptive(optimizer: torch.optim.Optimizer, *, total_steps: int, base: str = "cosine", beta: float = 0.95,
                  min_scale: float = 0.1, max_scale: float = 1.0, rho_ref: float | None = None,
                  ref_steps: int | None = None, **base_params: Any) -> SNRAdaptiveSchedule:
    """SNR-adaptive scale on top of a ``base`` shape; see :class:`SNRAdaptiveSchedule` for the formula.

    Settings: ``base`` (any registered shape, default cosine; its own settings such as ``min_lr``
    or ``warmup_steps`` are passed through), ``beta`` in (0, 1) (EMA decay over steps),
    ``min_scale`` in (0, 1], ``max_scale`` in [1, inf), ``rho_ref`` in (0, 1] or None (calibrate),
    ``ref_steps`` int in [2, total_steps) or None (default: the warm-up length when ``base`` is
    ``warmup``, else round(0.1 * total_steps), at least 2).
    """
    ctx = "scheduler 'snr_adaptive'"
    beta = real(ctx, "beta", beta, low=0.0, high=1.0, low_open=True, high_open=True)
    # The hold period uses scale 1, so 1 must lie inside [min_scale, max_scale].
    min_scale = real(ctx, "min_scale", min_scale, low=0.0, high=1.0, low_open=True)
    max_scale = real(ctx, "max_scale", max_scale, low=1.0)
    if rho_ref is not None:
        rho_ref = real(ctx, "rho_ref", rho_ref, low=0.0, high=1.0, low_open=True)
    scheduler = _build_shape(base, optimizer, total_steps=total_steps, params=base_params, ctx=ctx, role="base",
                             own_params=("base", "beta", "min_scale", "max_scale", "rho_ref", "ref_steps"))
    if ref_steps is None:
        default = scheduler.warmup_steps if isinstance(scheduler, WarmupThen) else math.floor(0.1 * total_steps + 0.5)
        ref_steps = max(2, default)
        if ref_steps >= total_steps:
            raise ParameterError(f"{ctx}: total_steps={total_steps} is too short for the default ref_steps={ref_steps}; "
                               "ref_steps must be in [2, total_steps) -- set it explicitly or use more steps")
    ref_steps = integer(ctx, "ref_steps", ref_steps, low=2, high=total_steps)
    return SNRAdaptiveSchedule(optimizer, scheduler, total_steps=total_steps, beta=beta, min_scale=min_scale,
                               max_scale=max_scale, rho_ref=rho_ref, ref_steps=ref_steps)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _check_settings(where: str, build: Callable[..., Any], params: Mapping[str, Any],
                    own_params: Sequence[str] = ()) -> None:
    """Reject unknown and missing settings of ``build``; a builder with ``**kwargs`` checks its
    extra settings itself (underscore names are internal plumbing and always rejected)."""
    valid = list(own_params) + keyword_params(build, exclude=_FIXED)
    if takes_var_keyword(build):
        reject_unknown(where, {k: v for k, v in params.items() if k.startswith("_")}, valid)
    else:
        reject_unknown(where, params, valid)
    reject_missing(where, params, build, supplied=_FIXED)


def _build_shape(name: Any, optimizer: torch.optim.Optimizer, *, total_steps: int, params: Mapping[str, Any],
                 ctx: str | None = None, role: str | None = None, exclude: Sequence[str] = (),
                 own_params: Sequence[str] = ()) -> LRScheduler:
    """Look up and build a shape's torch scheduler, rejecting unknown settings.

    When building a nested shape (``after`` of warmup, ``base`` of snr_adaptive), ``own_params``
    are the outer schedule's settings, listed in errors so the message shows everything valid.
    """
    key = SCHEDULERS.key(name)
    if role is not None:
        shapes = [k for k, entry in SCHEDULERS.items() if entry.shape and k not in exclude]
        if key not in shapes:
            message = unknown_name_message(f"{role} schedule", name, shapes, match=key if isinstance(key, str) else None)
            raise UnknownNameError(f"{ctx}: {role}={name!r} is not allowed; {message}")
    build = SCHEDULERS.get(key).build
    where = f"scheduler {key!r}" if role is None else f"{ctx} with {role}={key!r}"
    extra: dict[str, Any] = {}
    if takes_var_keyword(build):
        # It validates its own nested settings; tell it ours so its errors list them too.
        extra["_outer_params"] = tuple(own_params)
        _check_settings(where, build, params)
    else:
        _check_settings(where, build, params, own_params)
    base_lrs = _base_lrs(optimizer)
    return build(optimizer, total_steps=total_steps, base_lrs=base_lrs, **params, **extra)


def _base_lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    """Per-group base lrs: ``group["initial_lr"]``, recorded from ``group["lr"]`` on first use.

    Same convention as ``torch.optim.lr_scheduler`` (it is saved with the optimizer's state_dict),
    so building a scheduler again over an optimizer whose lr was already decayed (e.g. to 0 by
    cosine) still uses the configured base rather than the decayed value.
    """
    lrs = []
    for i, group in enumerate(optimizer.param_groups):
        if "initial_lr" not in group:
            group["initial_lr"] = group["lr"].item() if isinstance(group["lr"], torch.Tensor) else group["lr"]
        lr = group["initial_lr"]
        if isinstance(lr, torch.Tensor):
            lr = lr.item()  # tensor lrs (capturable optimizers) are scheduled as plain floats
        lrs.append(real("scheduler", f"param_groups[{i}]['initial_lr']", lr, low=0.0, low_open=True))
    return lrs
