"""Surrogate gradients of the spiking-network libraries that rules.py does not already cover.

Checked against the sources: SpikingJelly `spikingjelly/activation_based/surrogate.py` (Fang et
al. 2023, Science Advances; commit afb13226 of fangwei123456/spikingjelly) and snnTorch
`snntorch/surrogate.py` (Eshraghian et al. 2023, Proc. IEEE; PyPI snntorch 1.0.0). Parameter
names follow the library (SpikingJelly's `alpha`, `w`, `c`, `leak`, `k`); where we already use
a name for the same role the mapping is in docs/correspondence.md (snnTorch's `slope` is our
`k`). Both libraries spike at x >= 0 (SpikingJelly) or x > 0 (snnTorch); the surrogate g(x) is
the same whichever forward it is paired with here. Gates (an indicator times a constant) return
an `Interval` and run through the 1-bit kernels; the rest store x.
"""
from __future__ import annotations

import math

import torch

from .definitions import BoundForward, ParameterError, register_rule
from harness.registry import Param, free, integer, nonnegative, positive
from .saved_state import GateRule, Interval, UniformOutsideGate

_ABOVE_ZERO = Interval(0.0, math.inf, closed_lo=False)  # x > 0: snnTorch's spike condition
_AT_OR_ABOVE_ZERO = Interval(0.0, math.inf)  # x >= 0: SpikingJelly's heaviside


# --- SpikingJelly -------------------------------------------------------------------------

@register_rule("piecewise_exp", saves="input", alpha=positive(1.0))
def piecewise_exp(x, *, alpha):
    """g(x) = (alpha / 2) exp(-alpha |x|), alpha = 1: the derivative of the piecewise exponential
    (SpikingJelly's PiecewiseExp; used in SLAYER, Shrestha & Orchard 2018, and Neftci et al. 2019)."""
    return (alpha / 2.0) * torch.exp(-alpha * x.abs())


@register_rule("soft_sign", saves="input", alpha=positive(2.0))
def soft_sign(x, *, alpha):
    """g(x) = alpha / (2 (1 + alpha |x|)^2), alpha = 2: the derivative of (softsign(alpha x) + 1) / 2
    (SpikingJelly's SoftSign, written there as 1 / (2 alpha (1/alpha + |x|)^2); SuperSpike,
    Zenke & Ganguli 2018)."""
    return alpha / (2.0 * (1.0 + alpha * x.abs()) ** 2)


@register_rule("super_spike", saves="input", alpha=positive(1.0))
def super_spike(x, *, alpha):
    """g(x) = alpha / (1 + |x|)^2, alpha = 1 (SpikingJelly's SuperSpike, after Zenke & Ganguli 2018).

    Not an alias of fast_sigmoid: there k sets the width, 1 / (1 + k|x|)^2, here alpha sets the
    height at a fixed width; the two agree only at alpha = k = 1."""
    return alpha / (1.0 + x.abs()) ** 2


@register_rule("nonzero_sign_log_abs", saves="input", alpha=positive(1.0))
def nonzero_sign_log_abs(x, *, alpha):
    """g(x) = 1 / (1/alpha + |x|) = alpha / (1 + alpha |x|), alpha = 1: the derivative of
    sign(x) log(1 + alpha |x|) (SpikingJelly's NonzeroSignLogAbs)."""
    return alpha / (1.0 + alpha * x.abs())


@register_rule("piecewise_leaky_relu", saves="bits", w=positive(1.0), c=free(0.01),
               levels=lambda w, c: (c, 1.0 / (2.0 * w)))
def piecewise_leaky_relu(*, w, c):
    """g(x) = 1 / (2w) for |x| < w, c otherwise, w = 1, c = 0.01 (SpikingJelly's
    PiecewiseLeakyReLU, whose code uses the open window |x| < w; Yin et al. 2017, Wu et al. 2018
    STBP). A gate with two levels: one bit."""
    return Interval(-w, w, closed_lo=False, closed_hi=False)


@register_rule("squarewave_fourier", saves="input", n=integer(2, 2, 256), period=positive(8.0))
def squarewave_fourier(x, *, n, period):
    """g(x) = (4 / T) sum_{i=1}^{n-1} cos((2i - 1) w x), w = 2 pi / T, n = 2, T = period = 8: the
    derivative of the square wave's Fourier series of order n, 1/2 + (2/pi) sum sin((2i-1) w x) / (2i-1)
    (SpikingJelly's SquarewaveFourierSeries(n, T_period)). n - 1 terms, so n >= 2 (n = 1 is g = 0).
    Periodic, and negative where the cosines are (|x| in (2, 6) for the defaults)."""
    omega = 2.0 * math.pi / period
    g = torch.zeros_like(x)
    for i in range(1, n):
        g = g + torch.cos((2 * i - 1) * omega * x)
    return (4.0 / period) * g


@register_rule("s2nn", saves="input", alpha=positive(4.0), beta=free(1.0))
def s2nn(x, *, alpha, beta):
    """g(x) = alpha s (1 - s), s = sigmoid(alpha x), for x < 0; beta / (x + 1) for x >= 0;
    alpha = 4, beta = 1 (S2NN, Suetake et al. 2023, arXiv 2201.10879; SpikingJelly's S2NN)."""
    # s (1 - s) as sigmoid(alpha x) sigmoid(-alpha x): no cancellation near s = 1. The clamp: both
    # branches of where() are evaluated everywhere; keep x + 1 away from 0 in the unused one.
    bump = alpha * torch.sigmoid(alpha * x) * torch.sigmoid(-alpha * x)
    return torch.where(x < 0, bump, beta / (x.clamp(min=0.0) + 1.0))


@register_rule("q_pseudo_spike", saves="input", alpha=Param(2.0, lo=1.0, open_lo=True))
def q_pseudo_spike(x, *, alpha):
    """g(x) = (1 + 2|x| / (alpha - 1))^(-alpha), alpha = 2 (> 1; the paper's q): the q-PseudoSpike
    surrogate (Herranz-Celotti & Rouat 2022, arXiv 2202.00282; SpikingJelly's QPseudoSpike)."""
    return (1.0 + 2.0 * x.abs() / (alpha - 1.0)) ** (-alpha)


@register_rule("leaky_k_relu", saves="bits", leak=free(0.0), k=free(1.0), levels=lambda leak, k: (leak, k))
def leaky_k_relu(*, leak, k):
    """g(x) = k for x >= 0, leak otherwise, leak = 0, k = 1 (SpikingJelly's LeakyKReLU; Yin et al.
    2017, Wu et al. 2018). A gate with two levels: one bit."""
    return _AT_OR_ABOVE_ZERO


@register_rule("log_tailed_relu", saves="input", alpha=free(0.0))
def log_tailed_relu(x, *, alpha):
    """g(x) = alpha for x <= 0, 1 for 0 < x <= 1, 1/x for x > 1, alpha = 0: the derivative of the
    log-tailed ReLU (Cai et al. 2017, HWGQ, arXiv 1702.00953; SpikingJelly's LogTailedReLU)."""
    alpha_t = torch.full_like(x, alpha)
    return torch.where(x <= 0, alpha_t, torch.where(x > 1, 1.0 / x.clamp(min=1.0), torch.ones_like(x)))


@register_rule("fake_numerical_gradient", saves="input", alpha=positive(0.3))
def fake_numerical_gradient(x, *, alpha):
    """g(x) = min(1 / |x|, alpha), alpha = 0.3 (g(0) = alpha): SpikingJelly's FakeNumericalGradient,
    clip(sign(x) / x, max=alpha). SpikingJelly's sign(-0.0) = +1 gives -inf at x = -0.0; here
    g(-0.0) = alpha like g(+0.0)."""
    return torch.clamp(1.0 / x.abs(), max=alpha)


@register_rule("rect", saves="bits", alpha=positive(1.0), levels=lambda alpha: (0.0, alpha))
def rect(*, alpha):
    """g(x) = alpha 1[|x| < 1 / (2 alpha)], alpha = 1: a unit-area window (SpikingJelly's Rect).
    Differs from `rectangular` (1[a <= x <= b]) in its height and its open ends."""
    return Interval(-0.5 / alpha, 0.5 / alpha, closed_lo=False, closed_hi=False)


# --- snnTorch -----------------------------------------------------------------------------

@register_rule("heaviside", saves="bits")
def heaviside():
    """g(x) = 1[x > 0]: ReLU's derivative used as a surrogate (snnTorch's `heaviside` surrogate,
    FreeGrad's `d(ReLU)`). The forward alias `heaviside` is the step itself."""
    return _ABOVE_ZERO


@register_rule("spike_rate_escape", saves="input", beta=positive(1.0), k=positive(25.0), c=free(1.0))
def spike_rate_escape(x, *, beta, k, c):
    """g(x) = k exp(-beta |x - c|), beta = 1, k = 25 (snnTorch `slope`), c = 1: the escape-noise
    firing-rate derivative (Gerstner & Kistler 2002; snnTorch's spike_rate_escape). snnTorch
    centres it at x = 1 although its neurons spike at x > 0 (its input is U - threshold); c = 1
    keeps that, c = 0 centres it on the threshold."""
    return k * torch.exp(-beta * (x - c).abs())


@register_rule("lso", saves="bits", slope=free(0.1), levels=lambda slope: (slope, 1.0))
def lso(*, slope):
    """g(x) = 1 for x > 0, slope otherwise, slope = 0.1: snnTorch's leaky spike operator (LSO), the
    derivative of a threshold-shifted leaky ReLU. Deterministic; snnTorch 1.0.0's `LSO()` wrapper
    calls the stochastic operator's apply with the wrong arguments and raises TypeError."""
    return _ABOVE_ZERO


@register_rule("sfs", saves="input", k=positive(25.0), b=free(1.0))
def sfs(x, *, k, b):
    """g(x) = 1 / (1 + k |x|)^2 for x > b, 0 otherwise, k = 25 (snnTorch `slope`), b = 1 (`B`):
    sparse fast sigmoid (Perez-Nieves & Goodman 2021, arXiv 2105.08810; snnTorch's SFS). With
    b = 1 the gradient flows only where x > 1."""
    return torch.where(x > b, 1.0 / (1.0 + k * x.abs()) ** 2, torch.zeros_like(x))


@register_rule("snntorch_triangular", saves="bits", t=positive(1.0), levels=lambda t: (t, -t))
def snntorch_triangular(*, t):
    """g(x) = t for x < 0, -t for x >= 0, t = 1 (snnTorch `threshold`): what snnTorch 1.0.0's
    `triangular` surrogate computes (the slopes of a triangle, not a triangular pulse; our
    `triangular` is the pulse max(0, 1 - |x|/w) of FreeGrad and Esser et al.). One bit."""
    return _AT_OR_ABOVE_ZERO


def _build_sso(forward: BoundForward, *, mean: float, variance: float, extra: dict) -> UniformOutsideGate:
    if extra:
        raise ParameterError(f"backward rule 'sso' has no parameter {', '.join(map(repr, sorted(extra)))}. "
                             "Valid parameters: mean (default 0.0), variance (default 0.2).")
    gate = GateRule(name="sso", params={}, fn=lambda: _ABOVE_ZERO, forward_fn=forward)
    return UniformOutsideGate(name="sso", params={"mean": mean, "variance": variance}, base=gate,
                              shift=mean - 0.5, scale=variance)


@register_rule("sso", builder=_build_sso, mean=free(0.0), variance=nonnegative(0.2))
def sso():
    """g(x) = 1 for x > 0, (U - 0.5 + mean) variance otherwise, U ~ U(0, 1) fresh per element and
    backward pass, mean = 0, variance = 0.2 (so U(-0.1, 0.1) below threshold): snnTorch's
    stochastic spike operator (SSO). Stores the gate's one bit; U comes from the run seed's
    counter-based hash, as for the jamming rules."""


__all__: list[str] = []
