"""Conformance of every registered backward rule: formulas, consistency, randomness."""
import math

import pytest
import torch

from harness.activations import FORWARDS, RULES, ActivationPair, RandomSource, make_pair
from support.probes import smooth_points

X = torch.tensor([-2.0, -1.0, -0.5, -0.2, 0.0, 0.1, 0.5, 1.0], dtype=torch.float64)


def grad_of(forward, backward, x, seed=0, **params):
    """dL/dx of sum(pair(x)) (so dL/dy = 1 and the gradient is g itself)."""
    spec = make_pair(forward, backward, rng=RandomSource(seed), **params)
    x = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(ActivationPair.from_spec(spec)(x).sum(), x)
    return g


# Hand-computed values (calculator, from the formulas in the papers).
HAND = {
    "b_silu": ([0.0, 1.0, -2.0], [0.9175, 1.2560124403847615, 0.0845550388389604]),
    "nelu": ([1.0, 0.5, 0.0, -0.5, -1.0, -2.0], [1.0, 1.0, 0.0, -0.064, -0.05, -0.016]),
    "fast_sigmoid": ([0.0, 0.1, -0.2, 1.0], [1.0, 1 / 12.25, 1 / 36, 1 / 676]),
    "atan": ([0.0, 0.5, -1.0, 0.1], [1.0, 0.288400439142001, 0.09199966835037524, 0.9101698376462755]),
    "rectangular": ([-0.6, -0.5, 0.0, 0.5, 0.51], [0.0, 1.0, 1.0, 1.0, 0.0]),
    "triangular": ([0.0, 0.25, -0.5, 1.0, 2.0], [1.0, 0.75, 0.5, 0.0, 0.0]),
}


@pytest.mark.parametrize("rule", sorted(HAND))
def test_rule_matches_hand_computed_values(rule):
    xs, expected = HAND[rule]
    g = grad_of("relu", rule, torch.tensor(xs, dtype=torch.float64))
    torch.testing.assert_close(g, torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=1e-12)


# Independent re-implementations of the other formulas (docs/DESIGN.md table, default parameters).
FORMULAS = {
    "constant": lambda x: torch.ones_like(x),
    "ste": lambda x: torch.ones_like(x),
    "clipped_ste": lambda x: (x.abs() <= 1).double(),
    "sigmoid": lambda x: 4 * torch.sigmoid(4 * x) * (1 - torch.sigmoid(4 * x)),
    "erf": lambda x: 2 / math.sqrt(math.pi) * torch.exp(-4 * x**2),
    "piecewise_quadratic": lambda x: torch.where(x.abs() <= 1, 1 - x.abs(), torch.zeros_like(x)),
    "triangular": lambda x: torch.clamp(1 - x.abs(), min=0),
    "fast_sigmoid": lambda x: (1 + 25 * x.abs()) ** -2,
    "atan": lambda x: 1 / (1 + (math.pi * x) ** 2),
    "b_silu": lambda x: torch.sigmoid(x) * (1 + (x + 1.67) * (1 - torch.sigmoid(x))),
    "nelu": lambda x: torch.where(x > 0, torch.ones_like(x), 0.2 * x / (1 + x * x) ** 2),
    "rectangular": lambda x: ((x >= -0.5) & (x <= 0.5)).double(),
}


@pytest.mark.parametrize("rule", sorted(FORMULAS))
def test_rule_matches_independent_formula(rule):
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    torch.testing.assert_close(grad_of("relu", rule, x), FORMULAS[rule](x), rtol=1e-9, atol=1e-12)


def test_every_builtin_deterministic_rule_has_a_reference():
    """New built-in formulas need a reference above; combinators and jams are tested elsewhere."""
    import harness.activations.rules as builtin

    names = {n for n in RULES.names() if getattr(builtin, n, None) is not None and not RULES.get(n).jam}
    assert names <= set(FORMULAS), f"add a reference formula for {sorted(names - set(FORMULAS))}"


@pytest.mark.parametrize("rule", RULES.names())
@pytest.mark.parametrize("forward", ["relu", "tanh", "step"])
def test_backward_equals_rule_values_times_upstream(forward, rule):
    """The packed backward path gives exactly g(x) * dL/dy, with g from `values` (reference)."""
    x = smooth_points(200, dtype=torch.float32, lo=-3, hi=3)
    spec = make_pair(forward, rule, rng=RandomSource(7))
    x_ = x.clone().requires_grad_()
    y = ActivationPair.from_spec(spec)(x_)
    upstream = torch.linspace(-1, 1, x.numel())
    (grad,) = torch.autograd.grad(y, x_, upstream)
    expected = spec.rule.values(x, RandomSource(7)) * upstream
    assert grad.shape == x.shape and grad.dtype == x.dtype
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad, expected, rtol=1e-6, atol=1e-7)


STOCHASTIC = [n for n in RULES.names() if make_pair("relu", n).rule.stochastic]


def test_stochastic_rules_are_the_jams_and_noise():
    assert set(STOCHASTIC) == {"full_jam", "positive_jam", "rectangular_jam", "noise"}


@pytest.mark.parametrize("rule", STOCHASTIC)
def test_stochastic_rule_same_seed_same_gradient_other_seed_differs(rule):
    x = torch.linspace(-3, 3, 1000)
    a, b, c = grad_of("relu", rule, x, seed=1), grad_of("relu", rule, x, seed=1), grad_of("relu", rule, x, seed=2)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_jamming_draws_uniform_magnitudes_inside_the_gate_only():
    x = torch.linspace(-8, 8, 20001)
    g = grad_of("relu", "rectangular_jam", x)
    inside = (x >= -5) & (x <= 5)
    assert (g[~inside] == 0).all()
    assert g[inside].min() >= 0 and g[inside].max() <= 1
    assert abs(g[inside].mean().item() - 0.5) < 0.02  # U(0,1) mean
    pos = grad_of("relu", "positive_jam", x)
    assert (pos[x < 0] == 0).all() and (pos[x >= 0] > 0).float().mean() > 0.99
    full = grad_of("relu", "full_jam", x)
    assert abs(full.mean().item() - 0.5) < 0.02 and abs(full.var().item() - 1 / 12) < 0.005


def test_noise_is_unbiased_around_the_exact_derivative():
    x = torch.linspace(-3, 3, 40000)
    exact = (x > 0).float()
    add = grad_of("relu", "noise", x, sigma=0.5)
    assert abs((add - exact).mean().item()) < 0.01 and abs((add - exact).std().item() - 0.5) < 0.01
    mult = grad_of("relu", "noise", x, sigma=0.5, mode="multiplicative")
    assert (mult[x <= 0] == 0).all()
    assert abs(mult[x > 0].mean().item() - 1) < 0.02
    torch.testing.assert_close(grad_of("relu", "noise", x, sigma=0.0), exact)
    quiet = grad_of("relu", "noise", x, sigma=0.1, of="fast_sigmoid")
    assert abs((quiet - (1 + 25 * x.abs()) ** -2).std().item() - 0.1) < 0.005


def test_exact_rule_of_every_forward_is_registered():
    for name in FORWARDS.names():
        assert FORWARDS.get(name).exact is not None, name
