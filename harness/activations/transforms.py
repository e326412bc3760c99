"""FreeGrad's gradient transforms (Troiano et al. 2025, arXiv 2509.07236; PyPI `freegrad`
1.0.1, `freegrad/transforms/basic.py`) as combinators over any rule: `scale`, `clip_norm`,
`centralize`, and `noise(mode=gradient)`.

In FreeGrad a rule maps (dL/dy, x) to dL/dx, and rules compose in series. Here the inner rule
`of` (default: the forward's exact derivative) produces h = g_of(x) * dL/dy first, and the
transform then acts on h:

- `scale`:      dL/dx = s * h. Elementwise, so it is still a rule g(x) = s g_of(x): a gate stays
                a 1-bit gate with scaled levels (the fused kernels), a few-bit code keeps its bits.
- `clip_norm`:  dL/dx = h * min(1, max_norm / max(||h||_2, eps)). The norm is over the whole
                gradient tensor at this activation (every sample of the batch together, as in
                FreeGrad), recomputed in every backward pass.
- `centralize`: dL/dx = h - mean(h, dim) (keepdim). With dim = -1 (FreeGrad's default) and a
                (batch, features) activation, the mean is per sample, over its features.
- `noise(mode=gradient)` (combinators.py): dL/dx = h + sigma N(0, 1): FreeGrad's `noise`,
                whose noise does not scale with dL/dy.

None of them stores anything beyond what `of` stores: they act on the upstream gradient, which
backward receives anyway. clip_norm, centralize and gradient noise are not of the form
g(x) * dL/dy, so they cannot be quantized, noised elementwise or used by `derivative_of`; their
reference (`reference_grad(x, upstream)`) is the formula above applied to the inner rule's
reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .definitions import RULES, BoundForward, register_rule
from harness.registry import Param, free, integer, positive
from .saved_state import BoundRule, CodeRule, ConstantRule, GateRule, InputRule, OutputRule, RandomSource, WrappedRule


def inner_rule(of: str, forward: BoundForward, extra: dict[str, Any]) -> BoundRule:
    """Bind the inner rule named by `of` ('exact' means the forward's own derivative)."""
    return RULES.get(of).bind(forward, extra)


@dataclass(eq=False)
class GradientTransform(WrappedRule):
    """dL/dx = transform(h), h = the inner rule's dL/dx; stores what the inner rule stores."""

    def __post_init__(self):
        super().__post_init__()
        self.stochastic = self.base.stochastic
        self.elementwise = False

    def transform(self, h: Tensor, rng: RandomSource) -> Tensor:
        """The transform applied to the inner rule's gradient h."""
        raise NotImplementedError

    def multiplier(self, saved, meta, like, rng):
        raise TypeError(f"backward rule {self.name!r} acts on the whole upstream gradient; it has no elementwise g(x)")

    def values(self, x, rng=None):
        raise TypeError(f"backward rule {self.name!r} acts on the whole upstream gradient; it has no elementwise g(x): "
                        "use reference_grad(x, upstream)")

    def grad_input(self, grad_output, saved, meta, rng):
        return self.transform(self.base.grad_input(grad_output, saved, meta, rng), rng)

    def differentiable_grad(self, grad_output, saved, meta, rng):
        return self.transform(self.base.differentiable_grad(grad_output, saved, meta, rng), rng)

    def reference_grad(self, x, upstream, rng=None):
        rng = rng if rng is not None else RandomSource(0)
        return self.transform(self.base.reference_grad(x, upstream, rng), rng)


@dataclass(eq=False)
class ScaleGradient(GradientTransform):
    """dL/dx = s * h, for an inner rule that is itself a gradient transform."""

    s: float = 1.0

    def transform(self, h, rng):
        return h * self.s


@dataclass(eq=False)
class ClipNorm(GradientTransform):
    """dL/dx = h * min(1, max_norm / max(||h||_2, eps)), the norm over the whole tensor."""

    max_norm: float = 1.0
    eps: float = 1e-12

    def transform(self, h, rng):
        # Accumulate the norm in float32 at least: a bfloat16 sum of squares loses the norm.
        acc = torch.promote_types(h.dtype, torch.float32)
        norm = torch.linalg.vector_norm(h, dtype=acc)
        factor = (self.max_norm / norm.clamp_min(self.eps)).clamp(max=1.0)
        return h * factor.to(h.dtype)


@dataclass(eq=False)
class Centralize(GradientTransform):
    """dL/dx = h - mean(h, dim, keepdim=True) (gradient centralization along one dimension)."""

    dim: int = -1

    def transform(self, h, rng):
        ndim = max(h.dim(), 1)  # torch treats a 0-d tensor as 1-d for dim=0/-1
        if not -ndim <= self.dim < ndim:
            raise ValueError(f"backward rule 'centralize': dim={self.dim} but the gradient has {h.dim()} dimensions")
        if h.numel() == 0:
            return h.clone()
        return h - h.mean(dim=self.dim, keepdim=True)


@dataclass(eq=False)
class GradientNoise(GradientTransform):
    """dL/dx = h + sigma N(0, 1), N drawn from the run's seeded generator."""

    sigma: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        self.stochastic = True

    def transform(self, h, rng):
        noise = torch.randn(h.shape, generator=rng.generator(h.device), device=h.device, dtype=h.dtype)
        return h + self.sigma * noise


def _scaled_fn(x: Tensor, *, scaled_fn_, scaled_s_, **params) -> Tensor:
    """s * g(x) for a smooth rule g; module-level so the fused-backward cache key stays stable."""
    return scaled_s_ * scaled_fn_(x, **params)


def _scaled_elementwise(base: BoundRule, s: float, shown: dict[str, Any]) -> BoundRule | None:
    """s * g as a rule of the same storage kind, or None where only a wrapper will do."""
    common = dict(name="scale", shown_params=shown, forward_fn=base.forward_fn)
    kind = type(base)
    if kind is GateRule:
        lo, hi = base.levels
        return GateRule(params=base.params, fn=base.fn, levels=(lo * s, hi * s), **common)
    if kind is ConstantRule:
        return ConstantRule(params={}, fn=lambda: base.value * s, **common)
    if kind is CodeRule:
        return CodeRule(params={}, borders=base.borders, levels_table=base.levels_table * s, nbits=base.nbits, **common)
    if kind in (InputRule, OutputRule):
        # No `native` here: torch's own backward kernel computes the unscaled f'.
        return kind(params={**base.params, "scaled_fn_": base.fn, "scaled_s_": s}, fn=_scaled_fn, **common)
    return None


@dataclass(eq=False)
class ScaledRule(WrappedRule):
    """g = s * g_base for an elementwise inner rule with no simpler form (jams, noise, SSO)."""

    s: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        self.stochastic = self.base.stochastic

    def multiplier(self, saved, meta, like, rng):
        return self.base.multiplier(saved, meta, like, rng) * self.s

    def grad_input(self, grad_output, saved, meta, rng):
        return self.base.grad_input(grad_output, saved, meta, rng) * self.s


def _build_scale(forward: BoundForward, *, s: float, of: str, extra: dict[str, Any]) -> BoundRule:
    base = inner_rule(of, forward, extra)
    shown = {"s": s, "of": of, **extra}
    if not base.elementwise:
        return ScaleGradient(name="scale", params={}, shown_params=shown, base=base, s=s)
    rule = _scaled_elementwise(base, s, shown)
    return rule if rule is not None else ScaledRule(name="scale", params={}, shown_params=shown, base=base, s=s)


def _build_clip_norm(forward: BoundForward, *, max_norm: float, eps: float, of: str, extra: dict[str, Any]) -> BoundRule:
    base = inner_rule(of, forward, extra)
    return ClipNorm(name="clip_norm", params={}, shown_params={"max_norm": max_norm, "of": of, **extra},
                    base=base, max_norm=max_norm, eps=eps)


def _build_centralize(forward: BoundForward, *, dim: int, of: str, extra: dict[str, Any]) -> BoundRule:
    base = inner_rule(of, forward, extra)
    return Centralize(name="centralize", params={}, shown_params={"dim": dim, "of": of, **extra}, base=base, dim=dim)


def _rule_name(default: str) -> Param:
    return Param(default)


@register_rule("scale", builder=_build_scale, s=free(1.0), of=_rule_name("exact"))
def scale():
    """g(x) = s * g_of(x), s = 1 (FreeGrad's `scale`, there applied to dL/dy alone: FreeGrad's
    scale(s) is scale(s, of=ste) here). Elementwise: stores what `of` stores, gates stay 1-bit."""


@register_rule("clip_norm", builder=_build_clip_norm, max_norm=positive(1.0), eps=positive(1e-12), of=_rule_name("exact"))
def clip_norm():
    """dL/dx = h min(1, max_norm / max(||h||_2, eps)), h = g_of(x) dL/dy, max_norm = 1, eps = 1e-12
    (FreeGrad's `clip_norm`). The L2 norm is over the whole gradient tensor of this activation
    (all samples together), per backward pass. Stores what `of` stores."""


@register_rule("centralize", builder=_build_centralize, dim=integer(-1, -16, 15), of=_rule_name("exact"))
def centralize():
    """dL/dx = h - mean(h, dim), h = g_of(x) dL/dy, dim = -1, keepdim (FreeGrad's `centralize`):
    for a (batch, features) activation the mean is per sample, over its features. Stores what
    `of` stores."""


__all__ = ["GradientTransform", "ClipNorm", "Centralize", "GradientNoise", "ScaleGradient", "ScaledRule", "inner_rule"]
