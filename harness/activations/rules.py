"""Backward rules g(x): surrogate gradients, straight-through estimators, jamming.

Each rule states its formula and source. Sources: SUGAR = Horuz et al. 2025 (arXiv
2505.22074); FreeGrad = Troiano et al. 2025 (arXiv 2509.07236); snnTorch and SpikingJelly
surrogate modules; Bengio et al. 2013 (STE); Courbariaux et al. 2016 (BinaryNet); Zenke &
Ganguli 2018 (SuperSpike); Fang et al. 2021 (atan surrogate). The combinator rules (exact,
derivative_of, noise, quantized) live in combinators.py.
"""
from __future__ import annotations

import math

import torch

from .definitions import register_rule
from harness.registry import positive
from .saved_state import Interval

_SQRT_PI = math.sqrt(math.pi)


def _ordered(a, b):
    return a <= b or f"the interval needs a <= b, got a={a} > b={b}"


@register_rule("constant", saves="nothing", c=1.0)
def constant(*, c):
    """g(x) = c. With c = 1 this is the straight-through estimator (Bengio et al. 2013) and
    FreeGrad's 'constant' backward."""
    return c


@register_rule("ste", saves="nothing")
def ste(**_):
    """g(x) = 1: the identity straight-through estimator (Bengio et al. 2013)."""
    return 1.0


@register_rule("clipped_ste", saves="bits", t=positive(1.0))
def clipped_ste(*, t):
    """g(x) = 1[|x| <= t], t = 1: BinaryNet's saturating STE (Courbariaux et al. 2016)."""
    return Interval(-t, t)


@register_rule("rectangular", saves="bits", a=-0.5, b=0.5, check=_ordered)
def rectangular(*, a, b):
    """g(x) = 1[a <= x <= b], default [-0.5, 0.5] (FreeGrad; SpikingJelly's rectangular window)."""
    return Interval(a, b)


@register_rule("triangular", saves="input", w=positive(1.0))
def triangular(x, *, w):
    """g(x) = max(0, 1 - |x| / w), w = 1 (Esser et al. 2016; FreeGrad's triangular)."""
    return torch.clamp(1.0 - x.abs() / w, min=0.0)


@register_rule("fast_sigmoid", saves="input", k=positive(25.0))
def fast_sigmoid(x, *, k):
    """g(x) = 1 / (1 + k |x|)^2, k = 25 (SuperSpike, Zenke & Ganguli 2018; snnTorch's default)."""
    return 1.0 / (1.0 + k * x.abs()) ** 2


@register_rule("atan", saves="input", a=positive(2.0))
def atan(x, *, a):
    """g(x) = (a / 2) / (1 + (pi a x / 2)^2), a = 2 (Fang et al. 2021; SpikingJelly/snnTorch ATan)."""
    return (a / 2.0) / (1.0 + (math.pi * a * x / 2.0) ** 2)


@register_rule("sigmoid", saves="input", k=positive(4.0))
def sigmoid(x, *, k):
    """g(x) = k s (1 - s), s = sigmoid(k x), k = 4 (SpikingJelly; snnTorch uses k = 25)."""
    # 1 - s = sigmoid(-k x): no cancellation where s is near 1 (float32 lost ~1e-3 relative there).
    return k * torch.sigmoid(k * x) * torch.sigmoid(-k * x)


@register_rule("erf", saves="input", a=positive(2.0))
def erf(x, *, a):
    """g(x) = (a / sqrt(pi)) exp(-a^2 x^2), a = 2: the Gaussian bump, the derivative of
    (1 + erf(a x)) / 2 (SpikingJelly's Erf surrogate)."""
    return (a / _SQRT_PI) * torch.exp(-(a * x) ** 2)


@register_rule("piecewise_quadratic", saves="input", a=positive(1.0))
def piecewise_quadratic(x, *, a):
    """g(x) = a - a^2 |x| for |x| <= 1/a, else 0, a = 1 (SpikingJelly's PiecewiseQuadratic)."""
    return torch.clamp(a - a * a * x.abs(), min=0.0)


@register_rule("b_silu", saves="input", a=1.67)
def b_silu(x, *, a):
    """g(x) = s + (x + a) s (1 - s), s = sigmoid(x), a = 1.67: the derivative of B-SiLU,
    (x + a) sigmoid(x) - a / 2 (SUGAR, Horuz et al. 2025, eq. for B-SiLU)."""
    s = torch.sigmoid(x)
    return s + (x + a) * s * (1.0 - s)


@register_rule("nelu", saves="input", a=positive(0.1))
def nelu(x, *, a):
    """g(x) = 1 for x > 0, a * 2x / (1 + x^2)^2 otherwise, a = 0.1: the derivative of NeLU,
    x for x > 0 and -a / (1 + x^2) otherwise (SUGAR, Horuz et al. 2025)."""
    return torch.where(x > 0, torch.ones_like(x), a * 2.0 * x / (1.0 + x * x) ** 2)


@register_rule("full_jam", saves="nothing", jam=True)
def full_jam(**_):
    """g(x) = U(0, 1), a fresh draw per element and step, no gate (FreeGrad 'full jamming')."""
    return 1.0


@register_rule("positive_jam", saves="bits", jam=True)
def positive_jam():
    """g(x) = U(0, 1) * 1[x >= 0] (FreeGrad 'positive jamming')."""
    return Interval(0.0, math.inf)


@register_rule("rectangular_jam", saves="bits", jam=True, a=-5.0, b=5.0, check=_ordered)
def rectangular_jam(*, a, b):
    """g(x) = U(0, 1) * 1[a <= x <= b], [a, b] = [-5, 5] (FreeGrad 'rectangular jamming')."""
    return Interval(a, b)
