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
