"""Conformance of every registered forward: exact derivative, native agreement, derivative_of."""
import pytest
import torch

from harness.activations import FORWARDS, ActivationPair, pair
from support.probes import NATIVE_FORWARDS, smooth_points


@pytest.mark.parametrize("forward", FORWARDS.names())
def test_exact_passes_gradcheck_in_float64(forward):
    x = smooth_points(48).requires_grad_()
    module = ActivationPair(forward, "exact")
    assert torch.autograd.gradcheck(module, (x,), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("forward", [f for f in FORWARDS.names() if f in NATIVE_FORWARDS])
def test_forward_and_exact_match_torch_native(forward):
    x = smooth_points(64).requires_grad_()
    native = NATIVE_FORWARDS[forward]
    (ref_grad,) = torch.autograd.grad(native(x).sum(), x)
    y = pair(x, forward, "exact")
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(y, native(x).detach(), rtol=1e-12, atol=1e-12)
    # rtol 1e-7: torch's hardsigmoid backward rounds its 1/6 to float32 even in float64.
    torch.testing.assert_close(grad, ref_grad, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("h", [f for f in FORWARDS.names() if f in NATIVE_FORWARDS])
@pytest.mark.parametrize("forward", ["relu", "step", "tanh"])
def test_derivative_of_equals_the_other_forwards_derivative(forward, h):
    x = smooth_points(64).requires_grad_()
    (ref,) = torch.autograd.grad(NATIVE_FORWARDS[h](x).sum(), x)
    y = pair(x, forward, "derivative_of", of=h)
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, ref, rtol=1e-7, atol=1e-12)
    # The forward is still f, not h.
    torch.testing.assert_close(y, pair(x, forward, "exact"))


def test_leaky_relu_slope_and_gelu_tanh_parameters_reach_the_derivative():
    x = smooth_points(64).requires_grad_()
    (g,) = torch.autograd.grad(pair(x, "leaky_relu", "exact", slope=0.2).sum(), x)
    torch.testing.assert_close(g, torch.where(x > 0, 1.0, 0.2).double())
    ref = torch.nn.functional.gelu(x, approximate="tanh")
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    (g,) = torch.autograd.grad(pair(x, "gelu", "exact", approximate="tanh").sum(), x)
    torch.testing.assert_close(g, g_ref)


def test_swish_beta_derivative_matches_autograd():
    x = smooth_points(64).requires_grad_()
    (g_ref,) = torch.autograd.grad((x * torch.sigmoid(1.7 * x)).sum(), x)
    (g,) = torch.autograd.grad(pair(x, "silu", "exact", beta=1.7).sum(), x)
    torch.testing.assert_close(g, g_ref)


def _with_native_backward():
    out = []
    for name in FORWARDS.names():
        exact = FORWARDS.get(name).exact
        if exact is not None and exact.native is not None:
            out.append(name)
    return out


def _parameter_settings(name):
    """Defaults, and every float parameter moved off its default (1.7x, or 0.3 if it is 0)."""
    defaults = {k: p.default for k, p in FORWARDS.get(name).params.items()}
    moved = {k: (v * 1.7 if v else 0.3) for k, v in defaults.items() if isinstance(v, float)}
    return [{}, moved] if moved else [{}]


@pytest.mark.parametrize("forward", _with_native_backward())
def test_native_backward_kernels_equal_the_closed_form_derivative(forward):
    """The fast path (torch's own backward op) and the documented formula are the same g."""
    assert {"silu", "gelu", "tanh", "sigmoid", "elu", "celu"} <= set(_with_native_backward())
    x = torch.cat([smooth_points(64), torch.tensor([-30.0, -5.0, 5.0, 30.0], dtype=torch.float64)]).requires_grad_()
    upstream = torch.randn(x.shape, dtype=torch.float64)
    for params in _parameter_settings(forward):
        module = ActivationPair(forward, "exact", **params)
        (grad,) = torch.autograd.grad(module(x), x, upstream)
        rule = module.spec.rule
        saved = x.detach() if rule.saves.value == "input" else module(x).detach()
        torch.testing.assert_close(grad, upstream * rule.fn(saved, **rule.params), rtol=1e-10, atol=1e-12,
                                   msg=lambda m: f"{forward} {params}: {m}")


def test_step_forward_is_the_heaviside_step_on_every_cpu_path(cpu_path):
    x = torch.cat([torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e-45, -1e-45]), torch.randn(4099)])
    for t in (x, x.reshape(-1, 1)[:, 0], x[:4100].reshape(41, 100).t()):  # odd length, non-contiguous
        y = FORWARDS.get("step")(t)
        assert y.dtype == t.dtype and y.shape == t.shape
        assert torch.equal(y, (t > 0).to(t.dtype))  # NaN -> 0, +0 and -0 -> 0
