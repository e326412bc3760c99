"""Forward functions f(x) and their exact derivatives f'(x), in closed form.

Each forward calls torch's native op, so the pair's forward costs what the native activation
costs. Each derivative declares the least state it needs (docs/DESIGN.md section 2): piecewise-linear
functions need one bit per element, smooth ones x or y. Each forward also declares `flat` (f' = 0
almost everywhere) and `relu_like` (f = 0 exactly on a half-line), see definitions.ForwardDef.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from . import kernels
from .backends import CPU, backend_for
from .definitions import register_forward
from harness.registry import choice, positive
from .saved_state import Interval

_SQRT_2PI = math.sqrt(2.0 * math.pi)
# Smooth forwards pass `native=`: torch's own backward kernel for dL/dy * f'. It is one
# vectorised pass (the closed forms below are several), so exact pairs cost what torch's
# activation costs; the closed forms stay the reference the tests hold them to.
_aten = torch.ops.aten
# torch.nn.SELU's constants (Klambauer et al. 2017).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


@register_forward("identity", flat=False, relu_like=False)
def identity(x):
    """f(x) = x."""
    return x


@identity.derivative(saves="nothing")
def _(**_):
    """f'(x) = 1."""
    return 1.0


@register_forward("relu", flat=False, relu_like=True)
def relu(x):
    """f(x) = max(0, x)."""
    return torch.relu(x)


@relu.derivative(saves="bits")
def _():
    """f'(x) = 1[x > 0]."""
    return Interval(0.0, math.inf, closed_lo=False)


@register_forward("relu6", flat=False, relu_like=True)
def relu6(x):
    """f(x) = min(max(0, x), 6)."""
    return F.relu6(x)


@relu6.derivative(saves="bits")
def _():
    """f'(x) = 1[0 < x < 6]."""
    return Interval(0.0, 6.0, closed_lo=False, closed_hi=False)


@register_forward("leaky_relu", flat=False, relu_like=False, slope=0.01)
def leaky_relu(x, *, slope):
    """f(x) = x for x > 0, slope * x otherwise."""
    return F.leaky_relu(x, slope)


@leaky_relu.derivative(saves="bits", levels=lambda slope: (slope, 1.0))
def _(*, slope):
    """f'(x) = 1 for x > 0, slope otherwise (one bit: which of the two levels)."""
    return Interval(0.0, math.inf, closed_lo=False)


@register_forward("elu", flat=False, relu_like=False, alpha=positive(1.0))
def elu(x, *, alpha):
    """f(x) = x for x > 0, alpha (e^x - 1) otherwise (Clevert et al. 2016)."""
    return F.elu(x, alpha)


@elu.derivative(saves="output", native=lambda g, y, *, alpha: _aten.elu_backward(g, alpha, 1.0, 1.0, True, y))
def _(y, *, alpha):
    """f'(x) = 1 for x > 0, alpha e^x = y + alpha otherwise (y > 0 exactly when x > 0)."""
    return torch.where(y > 0, 1.0, y + alpha)


@register_forward("selu", flat=False, relu_like=False)
def selu(x):
    """f(x) = scale * (x for x > 0, alpha (e^x - 1) otherwise), Klambauer et al. 2017."""
    return F.selu(x)


@selu.derivative(saves="output", native=lambda g, y: _aten.elu_backward(g, SELU_ALPHA, SELU_SCALE, 1.0, True, y))
def _(y):
    """f'(x) = scale for x > 0, y + scale * alpha otherwise."""
    return torch.where(y > 0, SELU_SCALE, y + SELU_SCALE * SELU_ALPHA)


@register_forward("celu", flat=False, relu_like=False, alpha=positive(1.0))
def celu(x, *, alpha):
    """f(x) = x for x > 0, alpha (e^(x/alpha) - 1) otherwise (Barron 2017)."""
    return F.celu(x, alpha)


@celu.derivative(saves="output", native=lambda g, y, *, alpha: _aten.elu_backward(g, alpha, 1.0, 1.0 / alpha, True, y))
def _(y, *, alpha):
    """f'(x) = 1 for x > 0, e^(x/alpha) = y / alpha + 1 otherwise."""
    return torch.where(y > 0, 1.0, y / alpha + 1.0)


@register_forward("gelu", flat=False, relu_like=False, approximate=choice("none", "tanh"))
def gelu(x, *, approximate):
    """f(x) = x Phi(x) (erf form), or the tanh approximation (Hendrycks & Gimpel 2016)."""
    return F.gelu(x, approximate=approximate)


@gelu.derivative(saves="input", native=lambda g, x, *, approximate: _aten.gelu_backward(g, x, approximate=approximate))
def _(x, *, approximate):
    """f'(x) = Phi(x) + x phi(x) (erf); for tanh: 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 k x^2),
    t = tanh(c (x + k x^3)), c = sqrt(2/pi), k = 0.044715."""
    if approximate == "tanh":
        c, k = math.sqrt(2.0 / math.pi), 0.044715
        t = torch.tanh(c * (x + k * x**3))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * k * x * x)
    cdf = 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
    return cdf + x * torch.exp(-0.5 * x * x) / _SQRT_2PI


@register_forward("silu", flat=False, relu_like=False, beta=positive(1.0))
def silu(x, *, beta):
    """f(x) = x sigmoid(beta x) (SiLU / Swish, Ramachandran et al. 2017)."""
    return F.silu(x) if beta == 1.0 else x * torch.sigmoid(beta * x)


@silu.derivative(saves="input", native=lambda g, x, *, beta: _aten.silu_backward(g, x) if beta == 1.0 else None)
def _(x, *, beta):
    """f'(x) = s + beta x s (1 - s), s = sigmoid(beta x)."""
    s = torch.sigmoid(beta * x)
    return s + beta * x * s * (1 - s)


@register_forward("mish", flat=False, relu_like=False)
def mish(x):
    """f(x) = x tanh(softplus(x)) (Misra 2019)."""
    return F.mish(x)


@mish.derivative(saves="input", native=lambda g, x: _aten.mish_backward(g, x))
def _(x):
    """f'(x) = tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2), sp = softplus(x)."""
    t = torch.tanh(F.softplus(x))
    return t + x * torch.sigmoid(x) * (1 - t * t)


@register_forward("softplus", flat=False, relu_like=False, beta=positive(1.0))
def softplus(x, *, beta):
    """f(x) = log(1 + e^(beta x)) / beta."""
    return F.softplus(x, beta=beta)


@softplus.derivative(saves="input", native=lambda g, x, *, beta: _aten.softplus_backward(g, x, beta, 20.0))
def _(x, *, beta):
    """f'(x) = sigmoid(beta x)."""
    return torch.sigmoid(beta * x)


@register_forward("tanh", flat=False, relu_like=False)
def tanh(x):
    """f(x) = tanh(x)."""
    return torch.tanh(x)


@tanh.derivative(saves="output", native=lambda g, y: _aten.tanh_backward(g, y))
def _(y):
    """f'(x) = 1 - y^2."""
    return 1 - y * y


@register_forward("sigmoid", flat=False, relu_like=False)
def sigmoid(x):
    """f(x) = 1 / (1 + e^-x) (the logistic unit)."""
    return torch.sigmoid(x)


@sigmoid.derivative(saves="output", native=lambda g, y: _aten.sigmoid_backward(g, y))
def _(y):
    """f'(x) = y (1 - y)."""
    return y * (1 - y)


@register_forward("hardtanh", flat=False, relu_like=False, min_val=-1.0, max_val=1.0, check=lambda min_val, max_val: min_val < max_val or "min_val must be < max_val")
def hardtanh(x, *, min_val, max_val):
    """f(x) = clamp(x, min_val, max_val)."""
    return F.hardtanh(x, min_val, max_val)


@hardtanh.derivative(saves="bits")
def _(*, min_val, max_val):
    """f'(x) = 1[min_val < x < max_val]."""
    return Interval(min_val, max_val, closed_lo=False, closed_hi=False)


@register_forward("hardsigmoid", flat=False, relu_like=True)
def hardsigmoid(x):
    """f(x) = relu6(x + 3) / 6."""
    return F.hardsigmoid(x)


@hardsigmoid.derivative(saves="bits", levels=lambda: (0.0, 1.0 / 6.0))
def _():
    """f'(x) = 1/6 on (-3, 3), 0 elsewhere."""
    return Interval(-3.0, 3.0, closed_lo=False, closed_hi=False)


@register_forward("hardswish", flat=False, relu_like=True)
def hardswish(x):
    """f(x) = x relu6(x + 3) / 6 (Howard et al. 2019)."""
    return F.hardswish(x)


@hardswish.derivative(saves="input", native=lambda g, x: _aten.hardswish_backward(g, x))
def _(x):
    """f'(x) = 0 for x < -3, 1 for x > 3, (2x + 3) / 6 in between."""
    return torch.where(x < -3, 0.0, torch.where(x > 3, 1.0, (2 * x + 3) / 6))


@register_forward("step", flat=True, relu_like=True)
def step(x):
    """f(x) = 1[x > 0] (Heaviside), in the input dtype."""
    if backend_for(x) is CPU:
        # One parallel pass (the kernel also packs the gate 1[x > 0], 1/32 of the bytes, unused
        # here); numpy below is single-threaded, so at 2 threads it cost 2.2x the kernel.
        return kernels.forward_pack(x, kernels.FORWARD_OPS["step"], 0.0, math.inf, False, True)[0]
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not torch.compiler.is_compiling():
        # numpy writes the float result in one pass; torch's bool compare + cast costs ~7x more.
        flat = x.detach().reshape(-1).numpy()
        return torch.from_numpy(np.greater(flat, 0, out=np.empty(flat.shape, flat.dtype))).view(x.shape)
    return (x > 0).to(x.dtype)


@step.derivative(saves="nothing")
def _(**_):
    """f'(x) = 0 almost everywhere: training needs a surrogate rule."""
    return 0.0


@register_forward("sign", flat=True, relu_like=False)
def sign(x):
    """f(x) = sign(x) in {-1, 0, 1}."""
    return torch.sign(x)


@sign.derivative(saves="nothing")
def _(**_):
    """f'(x) = 0 almost everywhere."""
    return 0.0
