r"""Learning-rate schedules, stepped once per optimizer step, built by name from a flat config.

Usage in a training loop (``step()`` goes AFTER ``optimizer.step()`` and BEFORE
``optimizer.zero_grad()`` -- ``snr_adaptive`` reads ``p.grad``)::

    sched = build_scheduler(optimizer=opt, total_steps=T, **cfg.scheduler)
    for t in range(T):              # the lr used by step t is the value after t calls to step()
        loss.backward(); opt.step()
        sched.step()
        opt.zero_grad()

Conventions shared by every schedule:

* The base learning rate of each param group is read from ``group["lr"]`` when the first
  scheduler is built (and kept as ``group["initial_lr"]``, torch's convention); the scheduler then
  *owns* ``group["lr"]`` and overwrites it on every ``step()``.
* ``lr(t)`` is a pure function of the number ``t`` of completed ``step()`` calls (0 at
  construction), except for ``snr_adaptive`` which multiplies a pure base schedule by a
  gradient-driven scale. Stepping past ``total_steps`` is allowed: schedules hold their final
  value (no cosine restarts).
* Every scheduler has ``last_scale`` (1.0 except for ``snr_adaptive``) so a trainer can log it
  uniformly, plus ``get_last_lr()`` and ``state_dict()`` / ``load_state_dict()`` for resuming.

Registered schedules (``SCHEDULERS``):

* ``constant``                                    lr(t) = base
* ``step`` (step_size, gamma)                      lr(t) = base * gamma ** (t // step_size)
* ``cosine`` (min_lr | eta_min)                    lr(t) = min + (base - min) * (1 + cos(pi * min(t,T)/T)) / 2
* ``warmup`` (warmup_steps | warmup_fraction, after, ...) linear ramp then ``after``
* ``snr_adaptive`` (base, beta, min_scale, max_scale, rho_ref, ref_steps, ...) see
  :class:`SNRAdaptiveSchedule`.

``constant``, ``step``, ``cosine`` and ``warmup`` are *shapes* (pure ``lr(t, base_lr)`` functions)
and compose: ``warmup`` hands over to any non-warm-up shape and ``snr_adaptive`` multiplies any
shape. New shapes are added with :func:`register_shape`, stateful schedules with
:func:`register_scheduler`.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import torch

from harness.train.optimizers import (
    _integer,
    _keyword_params,
    _lookup,
    _real,
    _registrar,
    _reject_missing,
    _reject_unknown,
)

__all__ = [
    "SCHEDULERS",
    "LRSchedule",
    "SNRAdaptiveSchedule",
    "build_scheduler",
    "register_scheduler",
    "register_shape",
]


class Shape(Protocol):
    """A pure learning-rate curve: ``shape(t, base_lr) -> lr`` after ``t`` completed steps."""

    def __call__(self, step: int, base_lr: float) -> float: ...


#: name -> factory ``factory(optimizer, *, total_steps, **params) -> LRSchedule``.
SCHEDULERS: dict[str, Callable[..., "LRSchedule"]] = {}

#: name -> shape builder ``builder(*, total_steps, base_lrs, **params) -> Shape`` (composable ones).
_SHAPES: dict[str, Callable[..., Shape]] = {}

_F = TypeVar("_F", bound=Callable[..., Any])

# Keywords that build_scheduler supplies itself; they are never user settings.
_FIXED = ("optimizer", "total_steps", "base_lrs")


def register_scheduler(name: str) -> Callable[[_F], _F]:
    """Decorator: register a full factory ``factory(optimizer, *, total_steps, **params) -> LRSchedule``.

    Use this for schedules with state beyond the step count (e.g. ``snr_adaptive``). If the factory
    takes ``**kwargs`` it must validate them itself; otherwise its keyword parameters are the
    accepted settings and unknown ones are rejected by :func:`build_scheduler`.
    """
    return _registrar(SCHEDULERS, "scheduler", name)


def register_shape(name: str) -> Callable[[_F], _F]:
    """Decorator: register a pure shape builder ``builder(*, total_steps, base_lrs, **params) -> Shape``.

    The shape becomes available three ways: as a scheduler of its own (``build_scheduler(name)``),
    as the ``after`` schedule of ``warmup`` and as the ``base`` of ``snr_adaptive``.
    """
    key = name.strip().lower()

    def decorator(builder: _F) -> _F:
        if key in _SHAPES or key in SCHEDULERS:
            raise ValueError(f"scheduler {key!r} is already registered")
        _SHAPES[key] = builder

        def factory(optimizer: torch.optim.Optimizer, *, total_steps: int, **params: Any) -> LRSchedule:
            shape = _build_shape(key, total_steps=total_steps, base_lrs=_base_lrs(optimizer), params=params)
            return LRSchedule(optimizer, shape, total_steps=total_steps)

        factory.__doc__ = builder.__doc__
        factory.__name__ = f"{key}_factory"
        # Advertise the builder's settings so build_scheduler validates against them.
        factory._shape_builder = builder  # type: ignore[attr-defined]
        SCHEDULERS[key] = factory
        return builder

    return decorator


def build_scheduler(name: str, optimizer: torch.optim.Optimizer, *, total_steps: int, **params: Any) -> "LRSchedule":
    """Build the schedule registered as ``name`` for ``optimizer`` over ``total_steps`` steps.

    Args:
        name: registry key (case-insensitive), one of ``sorted(SCHEDULERS)``.
        optimizer: the optimizer whose ``param_groups[i]["lr"]`` (or ``"initial_lr"`` if an earlier
            scheduler recorded it) are the base learning rates; the scheduler overwrites
            ``"lr"`` from now on (the step-0 value is applied immediately).
        total_steps: number of optimizer steps in the run (> 0); cosine and warm-up fractions are
            relative to it.
        **params: schedule settings (see the module docstring); ``None`` is only accepted where a
            setting documents it (e.g. ``warmup_steps: null`` when ``warmup_fraction`` is used).

    Returns:
        An :class:`LRSchedule` with ``step()``, ``get_last_lr()``, ``last_scale``,
        ``state_dict()`` and ``load_state_dict()``.

    Raises:
        ValueError / TypeError with the bad value and the allowed range or names.
    """
    key, factory = _lookup(SCHEDULERS, name, kind="scheduler")
    ctx = f"scheduler {key!r}"
    total_steps = _integer(ctx, "total_steps", total_steps, low=1)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"{ctx}: optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    # Shape factories are validated against their builder's signature; full factories without
    # **kwargs against their own; full factories with **kwargs validate themselves.
    target = getattr(factory, "_shape_builder", factory)
    valid = _keyword_params(target, exclude=_FIXED)
    if not _takes_var_keyword(target):
        _reject_unknown(ctx, params, valid)
    else:
        # Underscore names are internal plumbing between nested schedules, never user settings.
        _reject_unknown(ctx, {k: v for k, v in params.items() if k.startswith("_")}, valid)
    _reject_missing(ctx, params, target, supplied=_FIXED)
    return factory(optimizer, total_steps=total_steps, **params)


# --------------------------------------------------------------------------------------------
# Schedulers
# --------------------------------------------------------------------------------------------


class LRSchedule:
    """Sets every param group's lr to ``shape(t, base_lr)`` after ``t`` calls to :meth:`step`.

    Attributes:
        optimizer: the optimizer being scheduled.
        total_steps: the run length the shape was built for.
        base_lrs: per-group base learning rates (``group["initial_lr"]``, else ``group["lr"]``).
        last_step: number of completed ``step()`` calls.
        last_scale: multiplicative factor on top of the shape (always 1.0 here; see
            :class:`SNRAdaptiveSchedule`), exposed so trainers can log every schedule the same way.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, shape: Shape, *, total_steps: int) -> None:
        """Capture base lrs from ``optimizer`` and immediately apply the step-0 learning rate."""
        self.optimizer = optimizer
        self.shape = shape
        self.total_steps = int(total_steps)
        self.base_lrs: list[float] = _base_lrs(optimizer)
        self.last_step = 0
        self.last_scale = 1.0
        self._last_lr: list[float] = []
        self._apply()

    def lr_at(self, step: int) -> list[float]:
        """Per-group learning rates after ``step`` completed steps (with the current scale)."""
        return [self.shape(step, base) * self.last_scale for base in self.base_lrs]

    def step(self) -> None:
        """Advance one optimizer step; call once per training step, after ``optimizer.step()``."""
        self.last_step += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """The per-group learning rates currently set on the optimizer (a copy)."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: the step count and base lrs (shapes are pure)."""
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs), "last_scale": self.last_scale}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` and re-apply the learning rate for the restored step."""
        base_lrs = [float(b) for b in state_dict["base_lrs"]]
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(
                f"state_dict has {len(base_lrs)} base lrs but the optimizer has "
                f"{len(self.optimizer.param_groups)} param groups"
            )
        self.base_lrs = base_lrs
        self.last_step = int(state_dict["last_step"])
        self.last_scale = float(state_dict.get("last_scale", 1.0))
        self._apply()

    def _apply(self) -> None:
        """Write the current learning rates into the optimizer's param groups."""
        self._last_lr = self.lr_at(self.last_step)
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            if isinstance(group["lr"], torch.Tensor):
                # Tensor lrs (capturable / compiled optimizers) must stay the same tensor.
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape!r}, total_steps={self.total_steps}, last_step={self.last_step})"


class SNRAdaptiveSchedule(LRSchedule):
    r"""Base schedule times a scale that follows the signal-to-noise ratio of the gradients.

    Surrogate gradients are noisy; when a step's gradient is mostly noise a smaller step is better.
    With :math:`g_t` the gradient of step :math:`t` (all parameters of the optimizer, flattened;
    ``p.grad is None`` counts as zero), :math:`t = 1, 2, \dots` the number of observed steps:

    .. math::

        m_t &= \beta m_{t-1} + (1-\beta) g_t, \qquad
        v_t = \beta v_{t-1} + (1-\beta) g_t^2 \quad (\text{elementwise}, m_0 = v_0 = 0) \\
        \hat m_t &= m_t / (1-\beta^t), \qquad \hat v_t = v_t / (1-\beta^t)
            \quad (\text{Adam bias correction}) \\
        \rho_t &= \lVert \hat m_t \rVert^2 / \textstyle\sum_i \hat v_{t,i}
            \in [0, 1] \quad (0 \text{ if } \textstyle\sum \hat v_t = 0) \\
        c_t &= \textstyle\sum_s w_s^2 = \frac{(1-\beta)(1+\beta^t)}{(1+\beta)(1-\beta^t)}
            \quad (w_s = (1-\beta)\beta^{t-s}/(1-\beta^t), \text{ the EMA weights}) \\
        \tilde\rho_t &= \operatorname{clip}\big((\rho_t - c_t)/(1 - c_t),\ 0,\ 1\big)
            \quad (t \ge 2) \\
        \text{scale}_t &= \operatorname{clip}(\tilde\rho_t / \rho_{\text{ref}},\
            \text{min\_scale},\ \text{max\_scale}) \quad (t \ge \text{ref\_steps};
            \ 1 \text{ before}) \\
        \text{lr}_t &= \text{base}(t, \text{base\_lr}) \cdot \text{scale}_t

    Why this is principled: :math:`\rho_t \le 1` because :math:`\hat m^2 \le \hat v` elementwise
    (Jensen; the bias-corrected weights sum to 1). If :math:`g_s = \mu + \xi_s` with i.i.d. zero-mean
    noise, :math:`S = \lVert\mu\rVert^2`, :math:`N = E\lVert\xi\rVert^2`, then
    :math:`E\lVert\hat m\rVert^2 = S + c_t N` and :math:`E\sum\hat v = S + N`, so
    :math:`\tilde\rho_t \approx S/(S+N)`, the fraction of gradient energy that is signal
    (:math:`\approx 0` for pure noise, 1 for a constant gradient). The noise-limited optimal SGD
    step scales with exactly this fraction (McCandlish et al. 2018, "An Empirical Model of
    Large-Batch Training": :math:`\epsilon_{opt} = \epsilon_{max} / (1 + B_{noise}/B)
    = \epsilon_{max} S/(S+N)`), hence a scale proportional to :math:`\tilde\rho`.

    The reference :math:`\rho_{ref}` makes the configured base lr mean "the lr at the reference
    SNR": either a constant (``rho_ref``) or, when ``rho_ref`` is ``None``, calibrated as
    :math:`\max(\tilde\rho_{\text{ref\_steps}}, 10^{-3})` at the end of the hold period (the floor
    avoids dividing by zero when calibration happened on pure noise). During the first
    ``ref_steps - 1`` steps the scale is 1 while the EMAs fill up.

    Cost per step: two ``torch._foreach`` updates on persistent fp32 buffers (``m``, ``v``: 2x the
    parameter memory), two ``_foreach_norm`` reductions and one device->host sync for the two
    scalars. ``step()`` must be called while ``p.grad`` still holds the step's gradient, i.e.
    before ``optimizer.zero_grad()``; after ``zero_grad(set_to_none=True)`` it raises.

    Attributes (beyond :class:`LRSchedule`): ``last_scale`` (scale applied to the current lr),
    ``last_rho`` (:math:`\tilde\rho_t`, NaN before step 2), ``rho_ref`` (None until calibrated).
    """

    # Floor for a calibrated reference; see class docstring.
    RHO_REF_FLOOR = 1e-3

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        shape: Shape,
        *,
        total_steps: int,
        beta: float,
        min_scale: float,
        max_scale: float,
        rho_ref: float | None,
        ref_steps: int,
    ) -> None:
        """Set up the EMA buffers (one fp32 pair per parameter); arguments are pre-validated."""
        self.beta = float(beta)
        self.min_scale = float(min_scale)
        self.max_scale = float(max_scale)
        self.rho_ref = None if rho_ref is None else float(rho_ref)
        self._fixed_rho_ref = rho_ref is not None
        self.ref_steps = int(ref_steps)
        self.last_rho = math.nan
        self._params: list[torch.Tensor] = [
            p for group in optimizer.param_groups for p in group["params"] if p.requires_grad
        ]
        if not self._params:
            raise ValueError("scheduler 'snr_adaptive': the optimizer has no trainable parameters")
        # fp32 buffers even for half-precision params: g^2 sums underflow / lose precision in bf16.
        self._m = [torch.zeros_like(p, dtype=_ema_dtype(p), memory_format=torch.preserve_format) for p in self._params]
        self._v = [torch.zeros_like(m) for m in self._m]
        super().__init__(optimizer, shape, total_steps=total_steps)

    def step(self) -> None:
        """Fold the current gradients into the EMAs, update ``last_scale``, advance the base schedule."""
        t = self.last_step + 1  # number of gradients observed after this call
        self._observe_gradients()
        if t >= 2:
            self.last_rho = self._signal_fraction(t)
        if t >= self.ref_steps:
            if self.rho_ref is None:
                # Calibrate once: the base lr is taken to be right for the SNR seen now.
                self.rho_ref = max(self.last_rho, self.RHO_REF_FLOOR)
            self.last_scale = min(max(self.last_rho / self.rho_ref, self.min_scale), self.max_scale)
        super().step()

    def state_dict(self) -> dict[str, Any]:
        """Base state plus EMA buffers, calibrated reference and last rho (exact resume)."""
        state = super().state_dict()
        state.update(
            m=[m.detach().clone() for m in self._m],
            v=[v.detach().clone() for v in self._v],
            rho_ref=self.rho_ref,
            last_rho=self.last_rho,
        )
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` (buffers are copied in place, keeping device/dtype)."""
        m, v = state_dict["m"], state_dict["v"]
        if len(m) != len(self._m) or len(v) != len(self._v):
            raise ValueError(
                f"state_dict has EMA buffers for {len(m)} parameters, this optimizer has {len(self._m)}"
            )
        with torch.no_grad():
            for dst, src in zip(self._m + self._v, list(m) + list(v)):
                dst.copy_(src)
        if not self._fixed_rho_ref:
            self.rho_ref = state_dict["rho_ref"]
        self.last_rho = float(state_dict["last_rho"])
        super().load_state_dict(state_dict)

    @torch.no_grad()
    def _observe_gradients(self) -> None:
        """m <- beta m + (1-beta) g ; v <- beta v + (1-beta) g^2, on all parameters at once."""
        beta = self.beta
        with_grad: list[int] = []
        grads: list[torch.Tensor] = []
        for i, p in enumerate(self._params):
            g = p.grad
            if g is None:
                continue
            if g.is_sparse:
                raise RuntimeError("scheduler 'snr_adaptive' does not support sparse gradients")
            with_grad.append(i)
            # Only low-precision grads are up-cast (allocates); fp32 grads are used in place.
            grads.append(g if g.dtype == self._m[i].dtype else g.to(self._m[i].dtype))
        if not grads:
            raise RuntimeError(
                "scheduler 'snr_adaptive': no parameter has a gradient; call scheduler.step() after "
                "optimizer.step() but before optimizer.zero_grad()"
            )
        m_sub = [self._m[i] for i in with_grad]
        v_sub = [self._v[i] for i in with_grad]
        # lerp_(g, 1-beta) == beta*m + (1-beta)*g in a single fused pass, no temporaries.
        torch._foreach_lerp_(m_sub, grads, 1.0 - beta)
        torch._foreach_mul_(v_sub, beta)
        torch._foreach_addcmul_(v_sub, grads, grads, value=1.0 - beta)
        if len(with_grad) != len(self._params):
            # A missing gradient is a zero gradient: the EMAs only decay.
            seen = set(with_grad)
            rest = [i for i in range(len(self._params)) if i not in seen]
            torch._foreach_mul_([self._m[i] for i in rest], beta)
            torch._foreach_mul_([self._v[i] for i in rest], beta)

    @torch.no_grad()
    def _signal_fraction(self, t: int) -> float:
        """Debiased signal fraction rho~_t from the EMAs (see class docstring); one host sync."""
        beta = self.beta
        m_norms = torch._foreach_norm(self._m)  # ||m_i||_2 per tensor
        v_sums = torch._foreach_norm(self._v, 1)  # v >= 0, so the L1 norm is the sum
        device = m_norms[0].device
        # fp32 sums over per-tensor norms are plenty; float64 is unavailable on some backends (MPS).
        m_sq = torch.stack([n.to(device) for n in m_norms]).float().square().sum()
        v_sum = torch.stack([n.to(device) for n in v_sums]).float().sum()
        m_sq, v_sum = torch.stack([m_sq, v_sum]).tolist()
        bias = 1.0 - beta**t
        # ||m^||^2 / sum v^ = (||m||^2 / bias^2) / (sum v / bias) = ||m||^2 / (sum v * bias)
        rho = m_sq / (v_sum * bias) if v_sum > 0.0 else 0.0
        rho = min(max(rho, 0.0), 1.0)  # the bound holds exactly; clip float round-off
        c = (1.0 - beta) * (1.0 + beta**t) / ((1.0 + beta) * bias)  # E||m^||^2 share of pure noise
        return min(max((rho - c) / (1.0 - c), 0.0), 1.0)


# --------------------------------------------------------------------------------------------
# Shapes (pure curves). Each is a frozen dataclass so repr() shows its settings in logs.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Constant:
    def __call__(self, step: int, base_lr: float) -> float:
        return base_lr


@dataclasses.dataclass(frozen=True)
class _StepDecay:
    step_size: int
    gamma: float

    def __call__(self, step: int, base_lr: float) -> float:
        return base_lr * self.gamma ** (step // self.step_size)


@dataclasses.dataclass(frozen=True)
class _Cosine:
    total_steps: int
    min_lr: float

    def __call__(self, step: int, base_lr: float) -> float:
        # Clamp so stepping past the end holds min_lr instead of climbing back up.
        progress = min(step, self.total_steps) / self.total_steps
        return self.min_lr + (base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclasses.dataclass(frozen=True)
class _Warmup:
    warmup_steps: int
    after: Shape

    def __call__(self, step: int, base_lr: float) -> float:
        if step < self.warmup_steps:
            # (t+1)/(W+1): never 0 (a zero-lr step is wasted), and the ramp continues linearly
            # into base_lr exactly at t = W, where `after` starts at its own step 0.
            return base_lr * (step + 1) / (self.warmup_steps + 1)
        return self.after(step - self.warmup_steps, base_lr)


@register_shape("constant")
def _constant(*, total_steps: int, base_lrs: Sequence[float]) -> Shape:
    """Constant learning rate: lr(t) = base_lr."""
    return _Constant()


@register_shape("step")
def _step(*, total_steps: int, base_lrs: Sequence[float], step_size: int, gamma: float = 0.1) -> Shape:
    """Step decay: lr(t) = base_lr * gamma ** (t // step_size); step_size counts optimizer steps."""
    ctx = "scheduler 'step'"
    step_size = _integer(ctx, "step_size", step_size, low=1)
    gamma = _real(ctx, "gamma", gamma, low=0.0, high=1.0, low_open=True)
    if step_size >= total_steps:
        # Not an error (sweeps vary total_steps), but the schedule is then constant.
        warnings.warn(
            f"{ctx}: step_size={step_size} >= total_steps={total_steps}, so the lr never decays",
            stacklevel=3,
        )
    return _StepDecay(step_size, gamma)


@register_shape("cosine")
def _cosine(
    *,
    total_steps: int,
    base_lrs: Sequence[float],
    min_lr: float | None = None,
    eta_min: float | None = None,
) -> Shape:
    """Cosine annealing from base_lr to min_lr (alias eta_min, torch's name; default 0) over total_steps."""
    ctx = "scheduler 'cosine'"
    if min_lr is not None and eta_min is not None:
        raise ValueError(f"{ctx}: give min_lr or its alias eta_min, not both (got min_lr={min_lr!r}, eta_min={eta_min!r})")
    key, value = ("eta_min", eta_min) if eta_min is not None else ("min_lr", min_lr)
    floor = _real(ctx, key, 0.0 if value is None else value, low=0.0)
    for i, base in enumerate(base_lrs):
        if floor > base:
            raise ValueError(
                f"{ctx}: {key}={value!r} must be in [0, base lr] but param group {i} has base lr {base!r}"
            )
    return _Cosine(total_steps, floor)


@register_shape("warmup")
def _warmup(
    *,
    total_steps: int,
    base_lrs: Sequence[float],
    warmup_steps: int | None = None,
    warmup_fraction: float | None = None,
    after: str = "cosine",
    _outer_params: Sequence[str] = (),
    **after_params: Any,
) -> Shape:
    """Linear warm-up lr(t) = base_lr*(t+1)/(W+1) for t < W, then `after` over the remaining total_steps - W.

    Exactly one of ``warmup_steps`` (int in [0, total_steps)) or ``warmup_fraction`` (in (0, 1),
    W = round(fraction * total_steps), at least 1) must be set. ``after`` is any registered shape
    except ``warmup`` (default ``cosine``); remaining settings (e.g. ``min_lr``) are passed to it.
    """
    ctx = "scheduler 'warmup'"
    if (warmup_steps is None) == (warmup_fraction is None):
        raise ValueError(
            f"{ctx}: set exactly one of warmup_steps or warmup_fraction "
            f"(got warmup_steps={warmup_steps!r}, warmup_fraction={warmup_fraction!r})"
        )
    if warmup_fraction is not None:
        fraction = _real(ctx, "warmup_fraction", warmup_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
        warmup_steps = max(1, math.floor(fraction * total_steps + 0.5))
        if warmup_steps >= total_steps:
            raise ValueError(
                f"{ctx}: warmup_fraction={warmup_fraction!r} of total_steps={total_steps} gives "
                f"{warmup_steps} warm-up steps; it must leave at least one step, i.e. be < total_steps"
            )
    else:
        warmup_steps = _integer(ctx, "warmup_steps", warmup_steps, low=0, high=total_steps)
    after_shape = _build_shape(
        after, total_steps=total_steps - warmup_steps, base_lrs=base_lrs, params=after_params,
        ctx=ctx, role="after", exclude=("warmup",),
        own_params=(*_outer_params, "warmup_steps", "warmup_fraction", "after"),
    )
    return _Warmup(warmup_steps, after_shape)


@register_scheduler("snr_adaptive")
def _snr_adaptive(
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    base: str = "cosine",
    beta: float = 0.95,
    min_scale: float = 0.1,
    max_scale: float = 1.0,
    rho_ref: float | None = None,
    ref_steps: int | None = None,
    **base_params: Any,
) -> SNRAdaptiveSchedule:
    """SNR-adaptive scale on top of a ``base`` shape; see :class:`SNRAdaptiveSchedule` for the formula.

    Settings: ``base`` (any registered shape, default cosine; its own settings such as ``min_lr``
    or ``warmup_steps`` are passed through), ``beta`` in (0, 1) (EMA decay over steps),
    ``min_scale`` in (0, 1], ``max_scale`` in [1, inf), ``rho_ref`` in (0, 1] or None (calibrate),
    ``ref_steps`` int in [2, total_steps) or None (default: the warm-up length when ``base`` is
    ``warmup``, else round(0.1 * total_steps), at least 2).
    """
    ctx = "scheduler 'snr_adaptive'"
    beta = _real(ctx, "beta", beta, low=0.0, high=1.0, low_open=True, high_open=True)
    # The hold period uses scale 1, so 1 must lie inside [min_scale, max_scale].
    min_scale = _real(ctx, "min_scale", min_scale, low=0.0, high=1.0, low_open=True)
    max_scale = _real(ctx, "max_scale", max_scale, low=1.0)
    if rho_ref is not None:
        rho_ref = _real(ctx, "rho_ref", rho_ref, low=0.0, high=1.0, low_open=True)
    shape = _build_shape(
        base, total_steps=total_steps, base_lrs=_base_lrs(optimizer), params=base_params,
        ctx=ctx, role="base",
        own_params=("base", "beta", "min_scale", "max_scale", "rho_ref", "ref_steps"),
    )
    if ref_steps is None:
        default = shape.warmup_steps if isinstance(shape, _Warmup) else math.floor(0.1 * total_steps + 0.5)
        ref_steps = max(2, default)
        if ref_steps >= total_steps:
            raise ValueError(
                f"{ctx}: total_steps={total_steps} is too short for the default ref_steps={ref_steps}; "
                "ref_steps must be in [2, total_steps) -- set it explicitly or use more steps"
            )
    ref_steps = _integer(ctx, "ref_steps", ref_steps, low=2, high=total_steps)
    return SNRAdaptiveSchedule(
        optimizer, shape, total_steps=total_steps, beta=beta, min_scale=min_scale,
        max_scale=max_scale, rho_ref=rho_ref, ref_steps=ref_steps,
    )


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _build_shape(
    name: Any,
    *,
    total_steps: int,
    base_lrs: Sequence[float],
    params: Mapping[str, Any],
    ctx: str | None = None,
    role: str | None = None,
    exclude: Sequence[str] = (),
    own_params: Sequence[str] = (),
) -> Shape:
    """Look up and build a shape, rejecting unknown settings.

    When building a nested shape (``after`` of warmup, ``base`` of snr_adaptive), ``own_params``
    are the outer schedule's settings, listed in errors so the message shows everything valid.
    """
    registry = {k: v for k, v in _SHAPES.items() if k not in exclude}
    if role is None:
        key, builder = _lookup(registry, name, kind="scheduler")
        where = f"scheduler {key!r}"
    else:
        try:
            key, builder = _lookup(registry, name, kind=f"{role} schedule")
        except ValueError as err:
            raise ValueError(f"{ctx}: {role}={name!r} is not allowed; {err}") from None
        where = f"{ctx} with {role}={key!r}"
    extra: dict[str, Any] = {}
    if _takes_var_keyword(builder):
        # It validates its own nested settings; tell it ours so its errors list them too.
        extra["_outer_params"] = tuple(own_params)
    else:
        _reject_unknown(where, params, list(own_params) + _keyword_params(builder, exclude=_FIXED))
    _reject_missing(where, params, builder, supplied=_FIXED)
    return builder(total_steps=total_steps, base_lrs=list(base_lrs), **params, **extra)


def _takes_var_keyword(fn: Callable[..., Any]) -> bool:
    """True if ``fn`` accepts ``**kwargs`` (and so validates extra settings itself)."""
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())


def _base_lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    """Per-group base lrs: ``group["initial_lr"]``, recorded from ``group["lr"]`` on first use.

    Same convention as ``torch.optim.lr_scheduler``: the first scheduler records the configured lr
    as ``initial_lr`` (it is saved with the optimizer's state_dict), so building a scheduler again
    over an optimizer whose lr was already decayed (e.g. to 0 by cosine) still uses the configured
    base rather than the decayed value.
    """
    lrs = []
    for i, group in enumerate(optimizer.param_groups):
        if "initial_lr" not in group:
            group["initial_lr"] = group["lr"].item() if isinstance(group["lr"], torch.Tensor) else group["lr"]
        lr = group["initial_lr"]
        if isinstance(lr, torch.Tensor):
            lr = lr.item()  # tensor lrs (capturable optimizers) are scheduled as plain floats
        lrs.append(_real("scheduler", f"param_groups[{i}]['initial_lr']", lr, low=0.0, low_open=True))
    return lrs


def _ema_dtype(p: torch.Tensor) -> torch.dtype:
    """fp32 for half-precision parameters, the parameter's own dtype otherwise."""
    return torch.float32 if p.dtype in (torch.float16, torch.bfloat16) else p.dtype
